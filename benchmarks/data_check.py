"""Calibration of `prepare`'s data check (`jaxcp.data.quality`) on clean and scrambled synthetic cohorts.

    python benchmarks/data_check.py [--infants 40] [--minutes 1] [--seed 11] [--layouts NAME_OR_FILE,...]

For every layout, a synthetic cohort is written (into a temporary folder) and each recording is measured
as it is, with strong 2D foreshortening ("foreshortened": every limb's bones scaled by a slow factor
swinging between 0.4 and 1, as a limb rotating out of the image plane), and with its coordinate columns
mixed up four ways: the joints relabelled (x and y of joint i read as joint p(i), "joints"), all 2V
columns in a random order ("all"), the x columns and the y columns each permuted among the joints
independently ("xy"), only the y columns permuted ("y"). Prints, per layout and kind, the range of the
per-recording figure r = median bone spread / median spread of unrelated joint pairs (the check fails a
recording when r > `quality.bone_ratio`), the range of the fraction of unstable bones, and how many
recordings fail and are flagged (the README's table). Besides
the built-in layouts, two user layouts: `my-16` (joints named as `jaxcp synth` knows them: a human body)
and `lab-15` (`lhip`/`rhip`-style names synth does not know: its bodies are a fan-shaped tree).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import common
import numpy as np

from jaxcp.data import quality, synth
from jaxcp.data.io import read_recording
from jaxcp.data.skeleton import Layout, layout_from_dict, load_layout

RESULTS = common.RESULTS

KINDS = ("clean", "foreshortened", "joints", "all", "xy", "y")


def _user_layout(name: str, parents: dict[str, str], parts: dict[str, list[str]], thorax: str) -> Layout:
    edges = [[joint, parent] for joint, parent in parents.items() if joint != parent]
    return layout_from_dict({"name": name, "joints": list(parents), "edges": edges, "center": thorax,
                             "parents": parents, "parts": parts, "thorax": thorax, "pelvis": "pelvis"})


def _limbs(side: str, joints: tuple[str, ...], root: str, fmt: str) -> dict[str, str]:
    names = [fmt.format(side=side, joint=joint) for joint in joints]
    return dict(zip(names, [root, *names[:-1]], strict=True))


def user_layouts() -> dict[str, Layout]:
    out = {}
    for name, thorax, head, fmt, short in (("my-16", "thorax", {"upper_neck": "thorax", "head_top": "upper_neck"},
                                            "{side}_{joint}", False),
                                           ("lab-15", "neck", {"head": "neck"}, "{side}{joint}", True)):
        arm = ("shoulder", "elbow", "wrist") if not short else ("shoulder", "elbow", "hand")
        leg = ("hip", "knee", "ankle") if not short else ("hip", "knee", "foot")
        sides = {s[0] if short else s: s for s in ("left", "right")}
        parents = {thorax: thorax, "pelvis": thorax, **head}
        parts = {"torso": [thorax, "pelvis", *head]}
        for key, side in sides.items():
            for limb, joints, root in (("arm", arm, thorax), ("leg", leg, "pelvis")):
                chain = _limbs(key, joints, root, fmt)
                parents.update(chain)
                parts[f"{side}_{limb}"] = list(chain)
        out[name] = _user_layout(name, parents, parts, thorax)
    return out


def foreshorten(coords: np.ndarray, layout: Layout, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(T, V, 2) coordinates whose limbs (parts named *arm* or *leg*) rotate out of the image plane about
    their root joint: every bone inside a limb is scaled by the limb's factor 0.7 + 0.3 cos(2 pi f t + phase),
    f in [0.1, 0.5] Hz, so its 2D length swings between 40 % and 100 %."""
    t = np.arange(coords.shape[0]) / fps
    part_of = layout.joint_to_part()
    factor = 0.7 + 0.3 * np.cos(2 * np.pi * rng.uniform(0.1, 0.5, (len(layout.parts), 1)) * t
                                + rng.uniform(0, 2 * np.pi, (len(layout.parts), 1)))
    limb = [("arm" in name or "leg" in name) for name, _ in layout.parts]
    out = coords.copy()
    for j in sorted(range(layout.num_joints), key=lambda j: _depth(layout.parents, j)):  # parents first
        parent = layout.parents[j]
        if parent != j:
            scale = factor[part_of[j], :, None] if limb[part_of[j]] and part_of[parent] == part_of[j] else 1.0
            out[:, j] = out[:, parent] + scale * (coords[:, j] - coords[:, parent])
    return out


def _depth(parents: tuple[int, ...], joint: int) -> int:
    depth = 0
    while parents[joint] != joint:
        joint, depth = parents[joint], depth + 1
    return depth


def scramble(coords: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(T, V, 2) coordinates with their columns scrambled as `kind` says (see the module docstring)."""
    t, v, _ = coords.shape
    if kind == "joints":
        return coords[:, rng.permutation(v)]
    if kind == "all":
        return coords.reshape(t, 2 * v)[:, rng.permutation(2 * v)].reshape(t, v, 2)
    if kind == "xy":
        return np.stack([coords[:, rng.permutation(v), 0], coords[:, rng.permutation(v), 1]], axis=-1)
    if kind == "y":
        return np.stack([coords[..., 0], coords[:, rng.permutation(v), 1]], axis=-1)
    return coords


def altered(coords: np.ndarray, layout: Layout, kind: str, fps: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "foreshortened":
        return foreshorten(coords, layout, fps, rng)
    return scramble(coords, kind, rng)


def measure(folder: Path, layout, kind: str, config: quality.QualityConfig, fps: float) -> tuple[str, list]:
    """(the table row, the recordings' r) for one layout and kind."""
    rng = np.random.default_rng(0)
    figures = {
        path.stem: quality.measure_recording(
            altered(np.asarray(read_recording(path, layout, fps).coords, np.float64), layout, kind, fps, rng),
            layout, fps, config)
        for path in sorted(folder.glob("orgcoords_*.csv"))
    }  # fmt: skip
    ratios = [f.bone_ratio for f in figures.values()]
    unstable = [len(f.unstable) / len(f.bone_spread) for f in figures.values()]
    verdict = quality.assess_cohort(figures, layout, config)
    label = kind if kind in ("clean", "foreshortened") else f"mixed up: {kind}"
    return (f"| {layout.name} | {label} | {np.nanmin(ratios):.2f}-{np.nanmax(ratios):.2f} | {min(unstable):.2f}-"
            f"{max(unstable):.2f} | {len(verdict.failed)} of {len(figures)} | {len(verdict.flagged)} |"), ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--infants", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--layouts", default="in-motion-29,coco-17,my-16,lab-15",
                        help="built-in names, my-16, lab-15 or layout YAML files")
    args = parser.parse_args()
    config, fps = quality.QualityConfig(), synth.DEFAULT_FPS
    root = Path(tempfile.mkdtemp(prefix="jaxcp-data-check-"))
    extremes, rows, load_before = {"clean": [], "scrambled": []}, [], os.getloadavg()
    try:
        print("| layout | recordings | r (min-max) | unstable bones (min-max) | fail | flagged |")
        print("|---|---|---|---|---|---|")
        for k, name in enumerate(args.layouts.split(",")):
            layout = user_layouts()[name] if name in user_layouts() else load_layout(name)
            folder = root / f"cohort{k}"
            synth.generate_cohort(folder, layout=layout, infants=args.infants, minutes=args.minutes,
                                  seed=args.seed, fps=fps)
            for kind in KINDS:
                row, ratios = measure(folder, layout, kind, config, fps)
                print(row, flush=True)
                rows.append(row)
                group = "clean" if kind in ("clean", "foreshortened") else "scrambled"
                extremes[group].extend(ratios)
        print(f"r: clean and foreshortened max {np.nanmax(extremes['clean']):.3f}, scrambled min "
              f"{np.nanmin(extremes['scrambled']):.3f}, threshold quality.bone_ratio = {config.bone_ratio:g}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {**common.environment(load_before), "benchmark": "data_check", "settings": vars(args),
              "bone_ratio": config.bone_ratio, "rows": rows, "clean_max": float(np.nanmax(extremes["clean"])),
              "scrambled_min": float(np.nanmin(extremes["scrambled"]))}
    print(f"wrote {common.write_json(RESULTS / 'data_check.json', result)}")


if __name__ == "__main__":
    main()
