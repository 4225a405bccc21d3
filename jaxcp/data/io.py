"""Read raw recordings and outcomes: `orgcoords_<id>.csv`, `<id>.npy` and an `id;outcome` file.

Every problem with a file raises `InputError` with one line naming the file and the problem. Coordinates
are kept as read (image units, y down); a point is missing (NaN in x and y) when a cell is empty or NaN,
when its confidence is below the threshold, or when its frame number is absent from the file.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxcp.core.errors import InputError
from jaxcp.data.skeleton import Layout

CSV_PREFIX = "orgcoords_"
DEFAULT_FPS = 30.0
DEFAULT_CONFIDENCE_THRESHOLD = 0.3
CONFIDENCE_SUFFIXES = ("_score", "_c")
MAX_FRAME_SPAN_RATIO = 10  # frame numbers may skip, but not span more than 10x the number of rows


@dataclasses.dataclass(frozen=True, eq=False)
class Recording:
    """One infant's raw recording.

    Attributes:
      id: infant id (from the file name).
      coords: (T, V, 2) float32 x, y per frame and joint in layout order; NaN = missing point.
      fps: frames per second of `coords`.
      label: 1 = CP, 0 = no CP, None = unknown.
      source: the file it was read from (for messages).
    """

    id: str
    coords: np.ndarray
    fps: float
    label: int | None
    source: str

    @property
    def num_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


def check_fps(fps: float, where: str = "--fps") -> float:
    """`fps` as a float; InputError unless it is a finite number > 0."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"{where}: frame rate must be a number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{where}: frame rate must be > 0, got {fps!r}")
    return value


def recording_id(path: str | Path) -> str | None:
    """The infant id of a recording file name, or None when the name is not a recording's."""
    name = Path(path).name
    if name.endswith(".csv") and name.startswith(CSV_PREFIX) and len(name) > len(CSV_PREFIX) + 4:
        return name[len(CSV_PREFIX):-4]
    if name.endswith(".npy") and len(name) > 4:
        return name[:-4]
    return None


# --------------------------------------------------------------------------------------------------------
# Coordinate CSV

def read_csv_recording(
    path: str | Path,
    layout: Layout,
    *,
    fps: float = DEFAULT_FPS,
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    label: int | None = None,
) -> Recording:
    """Read an `orgcoords_<id>.csv` file into a (T, V, 2) recording.

    Columns: `frame`, then `<joint>_x`, `<joint>_y` for every joint of `layout`, in any order (names are
    matched without regard to case); optional `<joint>_score` or `<joint>_c` confidence columns; other
    columns are ignored. Frame numbers must increase; a skipped frame number becomes a missing frame.
    """
    path = Path(path)
    fps = check_fps(fps)
    header, body = _split_header(_read_text(path), path)
    frame_col, xy_cols, conf_cols = _match_columns(header, layout, path)
    used = sorted({frame_col, *xy_cols.ravel().tolist(), *(c for c in conf_cols if c >= 0)})
    _check_cell_counts(body, len(header), path)
    table = _parse_numbers(body, header, used, path)
    frames = _frame_index(table[:, frame_col], path)
    points = table[:, xy_cols.ravel()].reshape(len(table), layout.num_joints, 2)
    points = _mask_points(points, table, conf_cols, confidence_threshold)
    coords = np.full((int(frames[-1]) + 1, layout.num_joints, 2), np.nan, np.float32)
    coords[frames] = points
    _check_coords(coords, layout, str(path))
    return Recording(recording_id(path) or path.stem, coords, fps, label, str(path))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read file ({type(error).__name__})") from None


def _split_header(text: str, path: Path) -> tuple[list[str], str]:
    if not text or text.isspace():  # isspace stops at the first other character; strip would copy
        raise InputError(f"{path}: empty file")
    first, _, body = (text.lstrip() if text[0].isspace() else text).partition("\n")
    header = [name.strip().lower() for name in next(csv.reader([first]))]
    if not body or body.isspace():
        raise InputError(f"{path}: no data rows below the header")
    return header, body


def _match_columns(header: list[str], layout: Layout, path: Path) -> tuple[int, np.ndarray, list[int]]:
    """Column indices: frame, (V, 2) x/y and a confidence column per joint (-1 when absent)."""
    position = {name: i for i, name in enumerate(header)}
    wanted = {"frame"} | {j.lower() + s for j in layout.joints for s in ("_x", "_y", *CONFIDENCE_SUFFIXES)}
    twice = [name for name in position if name in wanted and header.count(name) > 1]
    if twice:
        raise InputError(f"{path}: column {twice[0]!r} appears twice")
    if "frame" not in position:
        raise InputError(f"{path}: no 'frame' column")
    names = [joint.lower() for joint in layout.joints]
    missing = [j for j in names if f"{j}_x" not in position or f"{j}_y" not in position]
    if missing:
        raise InputError(f"{path}: no x/y columns for joints of layout {layout.name!r}: {_shown(missing)}")
    xy = np.array([[position[f"{j}_x"], position[f"{j}_y"]] for j in names])
    conf = [next((position[j + s] for s in CONFIDENCE_SUFFIXES if j + s in position), -1) for j in names]
    return position["frame"], xy, conf


def _check_cell_counts(body: str, num_columns: int, path: Path) -> None:
    """Every data row must have as many cells as the header: a row with an extra or a missing cell would
    shift the columns after it (x and y of later joints mixed)."""
    for number, line in enumerate(body.split("\n"), start=2):
        if not line.strip():
            continue
        cells = len(next(csv.reader([line]))) if '"' in line else line.count(",") + 1
        if cells != num_columns:
            raise InputError(f"{path}: line {number} has {cells} cells, the header has {num_columns}")


def _shown(names: list[str], limit: int = 5) -> str:
    """'a', 'b', 'c' and 4 more."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(repr(n) for n in names[:limit]) + more


def _fill_empty_cells(line: str) -> str:
    """One CSV line with `nan` written into its empty cells."""
    line = line.replace(",,", ",nan,").replace(",,", ",nan,")  # twice: runs of commas overlap
    if line.startswith(","):
        line = "nan" + line
    if line.endswith(","):
        line += "nan"
    return line


def _lines_for_parser(body: str) -> list[str]:
    """The body's lines, empty cells as `nan` (only lines holding an empty cell are rewritten)."""
    return [
        _fill_empty_cells(line) if (",," in line or line[:1] == "," or line[-1:] == ",") else line
        for line in body.splitlines()
    ]


def _parse_numbers(body: str, header: list[str], used: list[int], path: Path) -> np.ndarray:
    """(rows, columns) float64 table of the CSV body, NaN in the unused columns.

    numpy's C parser reads the used columns in one pass; when it fails, the bad cell is searched for
    line by line, to name it in one line.
    """
    try:
        values = np.loadtxt(_lines_for_parser(body), delimiter=",", quotechar='"', ndmin=2, dtype=np.float64,
                            usecols=used)
    except ValueError as error:
        _raise_bad_cell(body, header, used, path)
        raise InputError(f"{path}: cannot parse numbers ({' '.join(str(error).split())})") from None
    if np.isinf(values).any():
        row, col = np.argwhere(np.isinf(values))[0]
        raise InputError(f"{path}: infinite value in column {header[used[col]]!r} (data row {row + 1})")
    table = np.full((values.shape[0], len(header)), np.nan)
    table[:, used] = values
    return table


def _raise_bad_cell(body: str, header: list[str], used: list[int], path: Path) -> None:
    """Slow path after a parse error: find the offending line and cell, and raise about it."""
    for number, line in enumerate(body.split("\n"), start=2):
        if not line.strip():
            continue
        cells = line.split(",")
        for col in used:
            text = cells[col].strip().strip('"').strip()
            if not text:
                continue
            try:
                float(text)
            except ValueError:
                where = f"line {number}, column {header[col]!r}"
                raise InputError(f"{path}: non-numeric value {text!r} at {where}") from None


def _frame_index(frames: np.ndarray, path: Path) -> np.ndarray:
    """(rows,) int64 frame offsets from the first frame; frame numbers must be increasing integers."""
    bad = ~np.isfinite(frames) | (frames != np.round(frames))
    if bad.any():
        raise InputError(f"{path}: 'frame' must hold integers (data row {int(np.argmax(bad)) + 1})")
    steps = np.diff(frames)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 2
        raise InputError(f"{path}: frame numbers do not increase at data row {row}")
    offsets = (frames - frames[0]).astype(np.int64)
    if offsets[-1] + 1 > MAX_FRAME_SPAN_RATIO * len(frames):
        span = offsets[-1] + 1
        raise InputError(f"{path}: frame numbers span {span} frames but the file has only {len(frames)} rows")
    return offsets


def _mask_points(points: np.ndarray, table: np.ndarray, conf_cols: list[int], threshold: float) -> np.ndarray:
    """Points with a missing coordinate or a confidence below `threshold` become NaN in x and y."""
    missing = np.isnan(points).any(axis=-1)
    for v, col in enumerate(conf_cols):
        if col >= 0:
            confidence = table[:, col]
            missing[:, v] |= ~(confidence >= threshold)
    points = points.copy()
    points[missing] = np.nan
    return points


def _check_coords(coords: np.ndarray, layout: Layout, source: str) -> None:
    """A recording needs frames, and every joint needs at least one observed point."""
    if coords.shape[0] == 0:
        raise InputError(f"{source}: no frames")
    observed = ~np.isnan(coords).any(axis=-1)
    never = np.flatnonzero(~observed.any(axis=0))
    if never.size:
        raise InputError(f"{source}: joint {layout.joints[never[0]]!r} is missing in every frame")


# --------------------------------------------------------------------------------------------------------
# npy recordings

def read_npy_recording(
    path: str | Path, layout: Layout, fps: float = DEFAULT_FPS, *, label: int | None = None
) -> Recording:
    """Read a (T, V, 2) `.npy` recording (x, y per frame and joint in layout order; NaN = missing)."""
    path = Path(path)
    fps = check_fps(fps)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not a readable .npy array ({' '.join(str(error).split())})") from None
    expected = f"(T, {layout.num_joints}, 2)"
    if array.ndim != 3 or array.shape[1:] != (layout.num_joints, 2):
        raise InputError(f"{path}: expected shape {expected} for layout {layout.name!r}, got {array.shape}")
    if array.dtype.kind not in "fiu":
        raise InputError(f"{path}: expected numbers, got dtype {array.dtype}")
    coords = array.astype(np.float32)
    if np.isinf(coords).any():
        raise InputError(f"{path}: infinite coordinates")
    _check_coords(coords, layout, str(path))
    return Recording(recording_id(path) or path.stem, coords, fps, label, str(path))


def read_recording(path: str | Path, layout: Layout, fps: float = DEFAULT_FPS, *, label: int | None = None,
                   confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> Recording:
    """Read a `.csv` or `.npy` recording by its extension."""
    if str(path).endswith(".npy"):
        return read_npy_recording(path, layout, fps, label=label)
    return read_csv_recording(path, layout, fps=fps, confidence_threshold=confidence_threshold, label=label)


# --------------------------------------------------------------------------------------------------------
# Outcomes and raw folders

def read_outcomes(path: str | Path) -> dict[str, int]:
    """Read `id;outcome` rows below a header (1 = CP, 0 = no CP) into {id: outcome}.

    The delimiter is `;` as in MovementOutcome (`,` is accepted when the header has no `;`); `|` quotes;
    columns after the second are ignored. Duplicate ids and outcomes other than 0/1 are errors.
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise InputError(f"{path}: empty file")
    delimiter = ";" if ";" in numbered[0][1] or "," not in numbered[0][1] else ","
    rows = [(n, next(csv.reader([line], delimiter=delimiter, quotechar="|"))) for n, line in numbered]
    if len(rows[0][1]) >= 2 and rows[0][1][1].strip() in ("0", "1"):
        raise InputError(f"{path}: line 1 looks like data; the file needs an 'id;outcome' header line")
    outcomes: dict[str, int] = {}
    for n, fields in rows[1:]:
        if len(fields) < 2:
            raise InputError(f"{path}: line {n}: expected 'id{delimiter}outcome', got {lines[n - 1]!r}")
        key, value = fields[0].strip(), fields[1].strip()
        if not key:
            raise InputError(f"{path}: line {n}: empty id")
        if value not in ("0", "1"):
            raise InputError(f"{path}: line {n}: outcome {value!r} of id {key!r} is not 0 or 1")
        if key in outcomes:
            raise InputError(f"{path}: line {n}: duplicate id {key!r}")
        outcomes[key] = int(value)
    if not outcomes:
        raise InputError(f"{path}: no outcomes below the header")
    return outcomes


def find_outcomes_file(raw_dir: str | Path) -> Path:
    """`RAW_DIR/outcomes.csv` or `RAW_DIR/outcomes/outcomes.csv` (exactly one of them must exist)."""
    raw_dir = Path(raw_dir)
    found = [p for p in (raw_dir / "outcomes.csv", raw_dir / "outcomes" / "outcomes.csv") if p.is_file()]
    if not found:
        raise InputError(f"{raw_dir}: no outcomes file (outcomes.csv or outcomes/outcomes.csv)")
    if len(found) > 1:
        raise InputError(f"{raw_dir}: two outcomes files ({found[0]} and {found[1]}); keep one")
    return found[0]


def find_recording_files(raw_dir: str | Path) -> dict[str, Path]:
    """{id: file} for `orgcoords_<id>.csv` and `<id>.npy` in RAW_DIR and RAW_DIR/coords; ids are unique."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError(f"{raw_dir}: not a directory")
    files: dict[str, Path] = {}
    for folder in (raw_dir, raw_dir / "coords"):
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            key = recording_id(path)
            if key is None or not path.is_file():
                continue
            if key in files:
                raise InputError(f"{path}: duplicate id {key!r} (also {files[key]})")
            files[key] = path
    if not files:
        raise InputError(f"{raw_dir}: no recordings (orgcoords_<id>.csv or <id>.npy files)")
    return files


def match_outcomes(
    raw_dir: str | Path, outcomes_path: str | Path | None = None
) -> tuple[list[tuple[str, Path, int]], list[tuple[str, Path]], Path]:
    """Pair recording files with outcomes: ([(id, file, label)], [(id, file) without outcome], outcomes file).

    Sorted by id. An outcome without a recording is an error.
    """
    files = find_recording_files(raw_dir)
    outcomes_path = Path(outcomes_path) if outcomes_path else find_outcomes_file(raw_dir)
    outcomes = read_outcomes(outcomes_path)
    orphans = [key for key in outcomes if key not in files]
    if orphans:
        raise InputError(f"{outcomes_path}: no recording for outcome id {_shown(orphans)} in {raw_dir}")
    labelled = [(key, files[key], outcomes[key]) for key in sorted(files) if key in outcomes]
    unlabelled = [(key, files[key]) for key in sorted(files) if key not in outcomes]
    return labelled, unlabelled, outcomes_path


def read_raw_folder(
    raw_dir: str | Path,
    layout: Layout,
    fps: float = DEFAULT_FPS,
    *,
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    outcomes_path: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Recording]:
    """Read every labelled recording of a raw folder, sorted by id.

    Recordings are `orgcoords_<id>.csv` or `<id>.npy` files in RAW_DIR or RAW_DIR/coords; outcomes come
    from `outcomes_path` or `find_outcomes_file(raw_dir)`. An outcome without a recording is an error; a
    recording without an outcome is reported through `warn` (default: `warnings.warn`) and skipped.
    """
    fps = check_fps(fps)
    warn = warn or (lambda message: warnings.warn(message, stacklevel=3))
    labelled, unlabelled, outcomes_path = match_outcomes(raw_dir, outcomes_path)
    for key, path in unlabelled:
        warn(f"{path}: id {key!r} has no outcome in {outcomes_path}; skipped")
    return [
        read_recording(path, layout, fps, label=label, confidence_threshold=confidence_threshold)
        for _, path, label in labelled
    ]
