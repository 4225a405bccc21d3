"""Small hand-made raw data for the data tests: skeleton coordinates, CSV and outcomes writers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxcp.data.skeleton import Layout

TINY = Layout(
    name="tiny",
    joints=("head", "thorax", "pelvis"),
    edges=((0, 1), (1, 2)),
    center=1,
    parents=(1, 1, 1),
    parts=(("body", (0, 1, 2)),),
    thorax=(1,),
    pelvis=(2,),
)


def infant_coords(layout: Layout, num_frames: int, seed: int = 0) -> np.ndarray:
    """(T, V, 2) float32 plausible image coordinates (y down): a fixed body plus slow wiggles and noise.

    The thorax sits 0.2 above the pelvis, every other joint at a random spot near the body. The body
    wiggles as a whole (so its bones keep their lengths and it passes prepare's data check).
    """
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.7, size=(layout.num_joints, 2))
    base[list(layout.thorax)] = (0.5, 0.4)
    base[list(layout.pelvis)] = (0.5, 0.6)
    t = np.arange(num_frames)[:, None, None] / 30.0
    phase = rng.uniform(0, 2 * np.pi, size=(1, 1, 2))
    wiggle = 0.02 * np.sin(2 * np.pi * 0.5 * t + phase)
    noise = rng.normal(0, 0.002, size=(num_frames, layout.num_joints, 2))
    return (base[None] + wiggle + noise).astype(np.float32)


def write_csv(
    path: Path,
    layout: Layout,
    coords: np.ndarray,
    *,
    frames: Sequence[int] | None = None,
    confidence: np.ndarray | None = None,
    extra: Mapping[str, Sequence] | None = None,
    order: Sequence[int] | None = None,
    fmt: str = "{:.6f}",
) -> Path:
    """Write an `orgcoords_<id>.csv`: `frame`, then x/y (and confidence) per joint; NaN as empty cells.

    order: joint order of the columns (default: layout order); extra: additional named columns.
    """
    frames = list(range(1, len(coords) + 1)) if frames is None else list(frames)
    order = list(range(layout.num_joints)) if order is None else list(order)
    names, columns = ["frame"], [[str(f) for f in frames]]
    for v in order:
        for c, axis in enumerate("xy"):
            names.append(f"{layout.joints[v]}_{axis}")
            columns.append([_cell(x, fmt) for x in coords[:, v, c]])
        if confidence is not None:
            names.append(f"{layout.joints[v]}_score")
            columns.append([_cell(x, fmt) for x in confidence[:, v]])
    for name, values in (extra or {}).items():
        names.append(name)
        columns.append([str(x) for x in values])
    rows = [",".join(cells) for cells in zip(*columns, strict=True)]
    path.write_text(",".join(names) + "\n" + "\n".join(rows) + "\n")
    return path


def _cell(value: float, fmt: str) -> str:
    return "" if np.isnan(value) else fmt.format(value)


def write_outcomes(path: Path, outcomes: Mapping[str, object], header: str = "id;outcome") -> Path:
    """Write an outcomes file: the header, then one `id;outcome` line per entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{k};{v}\n" for k, v in outcomes.items()))
    return path


def make_raw_dir(
    root: Path, layout: Layout, labels: Mapping[str, int], num_frames: int = 200, seed: int = 0
) -> Path:
    """A raw folder: one `orgcoords_<id>.csv` per infant and `outcomes.csv`."""
    root.mkdir(parents=True, exist_ok=True)
    for k, key in enumerate(labels):
        write_csv(root / f"orgcoords_{key}.csv", layout, infant_coords(layout, num_frames, seed + k))
    write_outcomes(root / "outcomes.csv", labels)
    return root
