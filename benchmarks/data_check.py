"""Calibration of `prepare`'s data check (`jaxcp.data.quality`) on clean and scrambled synthetic cohorts.

    python benchmarks/data_check.py [--infants 40] [--minutes 1] [--seed 11] [--layouts NAME_OR_FILE,...]

For every layout, a synthetic cohort is written (into a temporary folder) and each recording is measured
as it is and with its coordinate columns scrambled three ways: all 2V columns in a random order ("all"),
the x columns and the y columns each permuted among the joints ("xy"), only the y columns permuted ("y").
Prints, per layout and kind, the range of the per-recording median bone spread (the check fails a
recording when most bones exceed `quality.bone_spread`, i.e. when this median does), the range of the
fraction of unstable bones, and how many recordings fail and are flagged (the README's table). Besides
the built-in layouts, two user layouts: `my-16` (joints named as `jaxcp synth` knows them: a human body)
and `lab-15` (`lhip`/`rhip`-style names synth does not know: its bodies are a fan-shaped tree).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from jaxcp.data import quality, synth
from jaxcp.data.io import read_recording
from jaxcp.data.skeleton import Layout, layout_from_dict, load_layout

KINDS = ("clean", "all", "xy", "y")


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


def scramble(coords: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(T, V, 2) coordinates with their columns scrambled as `kind` says (see the module docstring)."""
    t, v, _ = coords.shape
    if kind == "all":
        return coords.reshape(t, 2 * v)[:, rng.permutation(2 * v)].reshape(t, v, 2)
    if kind == "xy":
        return np.stack([coords[:, rng.permutation(v), 0], coords[:, rng.permutation(v), 1]], axis=-1)
    if kind == "y":
        return np.stack([coords[..., 0], coords[:, rng.permutation(v), 1]], axis=-1)
    return coords


def measure(folder: Path, layout, kind: str, config: quality.QualityConfig, fps: float) -> str:
    rng = np.random.default_rng(0)
    figures = {
        path.stem: quality.measure_recording(
            scramble(np.asarray(read_recording(path, layout, fps).coords, np.float64), kind, rng), layout, fps,
            config)
        for path in sorted(folder.glob("orgcoords_*.csv"))
    }  # fmt: skip
    medians = [np.nanmedian(f.bone_spread) for f in figures.values()]
    unstable = [len(f.unstable) / len(f.bone_spread) for f in figures.values()]
    verdict = quality.assess_cohort(figures, layout, config)
    return (f"| {layout.name} | {kind} | {min(medians):.3f}-{max(medians):.3f} | {min(unstable):.2f}-"
            f"{max(unstable):.2f} | {len(verdict.failed)} of {len(figures)} | {len(verdict.flagged)} |")


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
    try:
        print("| layout | recordings | median bone spread | unstable bones | fail | flagged |")
        print("|---|---|---|---|---|---|")
        for k, name in enumerate(args.layouts.split(",")):
            layout = user_layouts()[name] if name in user_layouts() else load_layout(name)
            folder = root / f"cohort{k}"
            synth.generate_cohort(folder, layout=layout, infants=args.infants, minutes=args.minutes,
                                  seed=args.seed, fps=fps)
            for kind in KINDS:
                print(measure(folder, layout, kind, config, fps), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
