"""Processed datasets on disk and the in-memory `Dataset` of one split.

Two folder formats are read by `load_dataset`:

* jaxcp's own (written by `jaxcp prepare`): `manifest.json` plus, per split (`train`, `val`, `test`),
  `<split>_coords.npy` float32 (N, 2, T_max, V) with NaN after each recording's end, `<split>_labels.npy`
  int64 (N,) and `<split>_ids.npy` str (N,). The arrays are laid out exactly as AutoCP's, so AutoCP can read
  them too; the manifest adds the layout, frame rate, settings, split and fold of every infant and lengths.
* AutoCP's: the same triplets for sets such as `val13456`, `val27`, `test`, without a manifest. There the
  split is the set name, `train` means `val13456` and `val` means `val27` when `train_coords.npy` /
  `val_coords.npy` do not exist, and a recording's length is the first NaN in x of joint 0.

In memory every recording is tiled from its start to fill T_max (AutoCP's "roll sequence"), so
`Dataset.coords` is NaN-free; `Dataset.lengths` keeps the true lengths.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcp import __version__
from jaxcp.core.atomic import save_npy, write_text
from jaxcp.core.config import from_dict
from jaxcp.core.errors import InputError
from jaxcp.data.io import DEFAULT_CONFIDENCE_THRESHOLD
from jaxcp.data.preprocess import PreprocessConfig
from jaxcp.data.skeleton import BUILTIN_LAYOUTS, Layout, layout_from_dict

MANIFEST = "manifest.json"
FORMAT = "jaxcp-processed"
FORMAT_VERSION = 1
AUTOCP_FPS = 30.0
AUTOCP_ALIASES = {"train": "val13456", "val": "val27"}
SPLIT_ORDER = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One split, ready for windows.

    Attributes:
      ids: (N,) infant ids.
      labels: (N,) int32, 1 = CP.
      coords: (N, T_max, V, 2) float32, NaN-free: each recording's frames, then the recording repeated
        from its start up to T_max.
      lengths: (N,) int32 true number of frames of each recording.
      layout_name: the skeleton layout of the joints axis.
      fps: frames per second.
    """

    ids: tuple[str, ...]
    labels: np.ndarray
    coords: np.ndarray
    lengths: np.ndarray
    layout_name: str
    fps: float

    @property
    def num_infants(self) -> int:
        return len(self.ids)

    @property
    def max_length(self) -> int:
        return int(self.coords.shape[1])


@dataclasses.dataclass(frozen=True)
class InfantEntry:
    """One infant in a manifest: its split, cross-validation fold (-1 for test) and recording facts.

    length: processed frames; raw_frames, missing_fraction, long_gap_fraction, num_long_gaps: the raw
    recording's `GapReport`.
    """

    id: str
    label: int
    split: str
    fold: int
    length: int
    source: str
    raw_frames: int = 0
    missing_fraction: float = 0.0
    long_gap_fraction: float = 0.0
    num_long_gaps: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class Manifest:
    """What `manifest.json` records about a processed dataset.

    quality: the data check's section (`jaxcp.data.quality.quality_record`); empty for manifests written
    before the check existed.
    """

    jaxcp_version: str
    layout: dict
    fps: float
    settings: dict
    splits: tuple[str, ...]
    infants: tuple[InfantEntry, ...]
    skipped: tuple[dict, ...] = ()
    quality: dict = dataclasses.field(default_factory=dict)

    @property
    def layout_name(self) -> str:
        return str(self.layout["name"])

    def split_of(self) -> dict[str, str]:
        return {entry.id: entry.split for entry in self.infants}


# --------------------------------------------------------------------------------------------------------
# Building and tiling

def tile_frames(coords: np.ndarray, length: int, num_frames: int) -> np.ndarray:
    """(num_frames, ...): the first `length` frames of coords, repeated from the start (t -> t % length)."""
    return np.take(coords[:length], np.arange(num_frames) % length, axis=0)


def make_dataset(
    ids: Sequence[str], labels: Sequence[int], sequences: Sequence[np.ndarray], layout_name: str, fps: float
) -> Dataset:
    """A `Dataset` from NaN-free (T_i, V, 2) sequences, tiled to the longest."""
    lengths = np.array([s.shape[0] for s in sequences], np.int32)
    t_max = int(lengths.max()) if len(sequences) else 0
    coords = np.stack([tile_frames(np.asarray(s, np.float32), len(s), t_max) for s in sequences]) \
        if len(sequences) else np.zeros((0, 0, 0, 2), np.float32)
    return Dataset(tuple(str(i) for i in ids), np.asarray(labels, np.int32).reshape(-1), coords, lengths,
                   layout_name, float(fps))


def pad_autocp(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 2, T_max, V) float32 NaN-padded AutoCP array from (T_i, V, 2) sequences."""
    t_max = max(s.shape[0] for s in sequences)
    out = np.full((len(sequences), 2, t_max, sequences[0].shape[1]), np.nan, np.float32)
    for i, s in enumerate(sequences):
        out[i, :, : s.shape[0]] = np.transpose(s, (2, 0, 1))
    return out


# --------------------------------------------------------------------------------------------------------
# Writing jaxcp's format (into a fresh directory that the caller commits atomically)

def write_split(directory: str | Path, split: str, ids: Sequence[str], labels: Sequence[int],
                sequences: Sequence[np.ndarray]) -> None:
    """Write one split's `<split>_coords/labels/ids.npy` (AutoCP layout) into `directory`."""
    directory = Path(directory)
    save_npy(directory / f"{split}_coords.npy", pad_autocp(sequences))
    save_npy(directory / f"{split}_labels.npy", np.asarray(labels, np.int64))
    save_npy(directory / f"{split}_ids.npy", np.asarray([str(i) for i in ids], dtype=str))


def write_manifest(directory: str | Path, manifest: Manifest) -> None:
    """Write `manifest.json` (pretty, stable key order)."""
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jaxcp_version": manifest.jaxcp_version,
        "layout": manifest.layout,
        "fps": manifest.fps,
        "settings": manifest.settings,
        "splits": list(manifest.splits),
        "infants": [dataclasses.asdict(e) for e in manifest.infants],
        "skipped": list(manifest.skipped),
    }
    if manifest.quality:
        data["quality"] = manifest.quality
    write_text(Path(directory) / MANIFEST, _json_lines(data))


def _json_lines(data: dict) -> str:
    """JSON with one line per top-level key and one line per element of lists of records."""
    return _json_block(data, " ") + "\n"


def _json_block(data: dict, indent: str) -> str:
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            inner = ",\n".join(f"{indent} {json.dumps(item)}" for item in value)
            parts.append(f"{indent}{json.dumps(key)}: [\n{inner}\n{indent}]")
        elif key == "quality" and isinstance(value, dict) and value:  # a section: one line per entry
            parts.append(f"{indent}{json.dumps(key)}: {_json_block(value, indent + ' ')}")
        else:
            parts.append(f"{indent}{json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n" + indent[:-1] + "}"


def new_manifest(layout: dict, fps: float, settings: dict, infants: Sequence[InfantEntry],
                 skipped: Sequence[dict] = (), quality: dict | None = None) -> Manifest:
    """A manifest for this jaxcp version; splits in train, val, test order."""
    present = {e.split for e in infants}
    splits = tuple(s for s in SPLIT_ORDER if s in present) + tuple(sorted(present - set(SPLIT_ORDER)))
    return Manifest(__version__, layout, float(fps), settings, splits, tuple(infants), tuple(skipped),
                    dict(quality or {}))


# --------------------------------------------------------------------------------------------------------
# Reading

def read_manifest(data_dir: str | Path) -> Manifest:
    """Read and check `manifest.json` of a jaxcp processed dataset."""
    path = Path(data_dir) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not found (not a jaxcp processed dataset)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read manifest ({type(error).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not a jaxcp manifest (format is not {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        version = data.get("format_version")
        raise InputError(f"{path}: format version {version!r}, this jaxcp reads {FORMAT_VERSION}")
    try:
        infants = tuple(InfantEntry(**entry) for entry in data["infants"])
        return Manifest(
            str(data["jaxcp_version"]), dict(data["layout"]), float(data["fps"]), dict(data["settings"]),
            tuple(data["splits"]), infants, tuple(data.get("skipped", ())), dict(data.get("quality") or {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: malformed manifest ({type(error).__name__}: {error})") from None


def dataset_layout(data_dir: str | Path) -> Layout:
    """The skeleton layout of a processed dataset (from the manifest, or by joint count for AutoCP)."""
    data_dir = Path(data_dir)
    if (data_dir / MANIFEST).is_file():
        spec = read_manifest(data_dir).layout
        builtin = BUILTIN_LAYOUTS.get(str(spec.get("name")))
        return builtin if builtin is not None else layout_from_dict(spec, str(data_dir / MANIFEST))
    by_joints = {lay.num_joints: lay for lay in reversed(tuple(BUILTIN_LAYOUTS.values()))}
    num_joints = _autocp_num_joints(data_dir)
    if num_joints not in by_joints:
        raise InputError(f"{data_dir}: no built-in layout has {num_joints} joints")
    return by_joints[num_joints]


def available_splits(data_dir: str | Path) -> tuple[str, ...]:
    """Split names that `load_dataset` accepts for this folder (AutoCP aliases included)."""
    data_dir = Path(data_dir)
    if (data_dir / MANIFEST).is_file():
        return read_manifest(data_dir).splits
    sets = sorted(p.name[: -len("_coords.npy")] for p in data_dir.glob("*_coords.npy"))
    if not sets:
        raise InputError(f"{data_dir}: no {MANIFEST} and no <set>_coords.npy files")
    aliases = [alias for alias, real in AUTOCP_ALIASES.items() if alias not in sets and real in sets]
    return tuple(aliases + sets)


def load_dataset(data_dir: str | Path, split: str) -> Dataset:
    """Load one split of a jaxcp or AutoCP processed folder (see the module docstring)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: not a directory")
    if (data_dir / MANIFEST).is_file():
        return _load_jaxcp(data_dir, split)
    return _load_autocp(data_dir, split)


def _load_jaxcp(data_dir: Path, split: str) -> Dataset:
    manifest = read_manifest(data_dir)
    if split not in manifest.splits:
        raise InputError(f"{data_dir}: no split {split!r} (has {', '.join(manifest.splits)})")
    ids, labels, padded = _read_triplet(data_dir, split)
    lengths = _lengths_from_nan(padded, data_dir / f"{split}_coords.npy")
    entries = {e.id: e for e in manifest.infants if e.split == split}
    if set(ids) != set(entries) or any(entries[i].length != n for i, n in zip(ids, lengths, strict=True)):
        raise InputError(f"{data_dir}: {split} arrays do not match {MANIFEST} (ids or lengths differ)")
    return _tiled(ids, labels, padded, lengths, manifest.layout_name, manifest.fps)


def _load_autocp(data_dir: Path, split: str) -> Dataset:
    name = split
    if not (data_dir / f"{split}_coords.npy").is_file() and split in AUTOCP_ALIASES:
        name = AUTOCP_ALIASES[split]
    if not (data_dir / f"{name}_coords.npy").is_file():
        raise InputError(f"{data_dir}: no set {split!r} (has {', '.join(available_splits(data_dir))})")
    ids, labels, padded = _read_triplet(data_dir, name)
    lengths = _lengths_from_nan(padded, data_dir / f"{name}_coords.npy")
    layout_name = {lay.num_joints: lay.name for lay in reversed(tuple(BUILTIN_LAYOUTS.values()))}.get(
        padded.shape[3], f"unknown-{padded.shape[3]}")
    return _tiled(ids, labels, padded, lengths, layout_name, AUTOCP_FPS)


def _autocp_num_joints(data_dir: Path) -> int:
    files = sorted(data_dir.glob("*_coords.npy"))
    if not files:
        raise InputError(f"{data_dir}: no {MANIFEST} and no <set>_coords.npy files")
    return int(_load_npy(files[0], mmap=True).shape[-1])


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not a readable .npy array ({type(error).__name__})") from None


def _read_triplet(data_dir: Path, name: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """ids, labels (N,) int32 and coords (N, 2, T_max, V) of one set, with their shapes checked."""
    coords_path = data_dir / f"{name}_coords.npy"
    coords = _load_npy(coords_path, mmap=True)
    labels = _load_npy(data_dir / f"{name}_labels.npy")
    ids = _load_npy(data_dir / f"{name}_ids.npy")
    if coords.ndim != 4 or coords.shape[1] != 2 or coords.dtype.kind != "f":
        raise InputError(f"{coords_path}: expected float (N, 2, T_max, V), got {coords.dtype} {coords.shape}")
    n = coords.shape[0]
    if labels.shape != (n,) or ids.shape != (n,):
        shapes = f"labels {labels.shape}, ids {ids.shape}"
        raise InputError(f"{data_dir}: set {name!r} has {n} recordings but {shapes}")
    if labels.dtype.kind not in "iub" or not np.isin(labels, (0, 1)).all():
        raise InputError(f"{data_dir / f'{name}_labels.npy'}: labels must be integers 0 or 1")
    ids = tuple(str(i) for i in ids.tolist())
    if len(set(ids)) != n:
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{data_dir / f'{name}_ids.npy'}: duplicate id {dup!r}")
    return ids, labels.astype(np.int32), coords


def _lengths_from_nan(padded: np.ndarray, path: Path) -> np.ndarray:
    """(N,) first NaN frame in x of joint 0 (T_max if none); the frames before must be NaN-free."""
    lengths = np.empty(padded.shape[0], np.int32)
    for i in range(padded.shape[0]):
        nan = np.isnan(padded[i, 0, :, 0])
        lengths[i] = int(np.argmax(nan)) if nan.any() else padded.shape[2]
        if lengths[i] == 0:
            raise InputError(f"{path}: recording {i} has no frames (x of joint 0 is NaN in frame 0)")
        if np.isnan(padded[i, :, : lengths[i]]).any():
            raise InputError(f"{path}: recording {i} has NaN inside its first {lengths[i]} frames")
    return lengths


def _tiled(ids, labels, padded: np.ndarray, lengths: np.ndarray, layout_name: str, fps: float) -> Dataset:
    """The Dataset of (N, 2, T_max, V) NaN-padded coords: channels last, each recording tiled."""
    t_max = padded.shape[2]
    frame = np.arange(t_max)[None, :] % lengths[:, None]
    coords = np.empty((padded.shape[0], t_max, padded.shape[3], 2), np.float32)
    for i in range(padded.shape[0]):
        coords[i] = np.transpose(padded[i][:, frame[i]], (1, 2, 0))
    return Dataset(ids, labels, coords, lengths, layout_name, float(fps))


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """How a model's training data were prepared, so that new recordings get the same treatment.

    Attributes:
      preprocess: the preprocessing settings (None: unknown, e.g. AutoCP npy data without a manifest).
      confidence_threshold: points with a lower `<joint>_score` were treated as missing.
      fps: frame rate of the processed data (= preprocess.target_fps for jaxcp datasets).
      source: the processed data folder the model was trained on (for the record).
    """

    preprocess: PreprocessConfig | None = None
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    fps: float = 30.0
    source: str = ""


def data_settings(data_dir: str | Path) -> DataSettings:
    """How a processed dataset was prepared (from its manifest; unknown preprocessing for AutoCP npy data)."""
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).is_file():
        return DataSettings(source=str(data_dir.resolve()))
    manifest = read_manifest(data_dir)
    settings = manifest.settings
    where = f"{data_dir / MANIFEST} settings"
    preprocess = from_dict(PreprocessConfig, settings.get("preprocess", {}), f"{where}: preprocess")
    threshold = settings.get("confidence_threshold", DataSettings.confidence_threshold)
    return DataSettings(preprocess=preprocess, confidence_threshold=float(threshold), fps=float(manifest.fps),
                        source=str(data_dir.resolve()))
