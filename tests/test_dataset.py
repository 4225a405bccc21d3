"""Processed datasets: tiling, jaxcp's manifest format and AutoCP's npy triplets, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_fixtures import TINY

from jaxcp import __version__
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import (
    InfantEntry,
    available_splits,
    dataset_layout,
    load_dataset,
    make_dataset,
    new_manifest,
    pad_autocp,
    read_manifest,
    tile_frames,
    write_manifest,
    write_split,
)
from jaxcp.data.skeleton import IN_MOTION_19, IN_MOTION_29, layout_to_dict


def seq(length: int, offset: float, num_joints: int = 3) -> np.ndarray:
    """(length, V, 2) with x = offset + t and y = joint index."""
    x = np.repeat(offset + np.arange(length, dtype=np.float32)[:, None], num_joints, 1)
    y = np.broadcast_to(np.arange(num_joints, dtype=np.float32), x.shape)
    return np.stack([x, y], -1)


def test_tiling_repeats_each_recording_from_its_start():
    np.testing.assert_array_equal(tile_frames(np.arange(3), 3, 8), [0, 1, 2, 0, 1, 2, 0, 1])
    data = make_dataset(["a", "b"], [1, 0], [seq(3, 0), seq(5, 100)], "tiny", 30)
    assert data.coords.shape == (2, 5, 3, 2) and data.coords.dtype == np.float32
    np.testing.assert_array_equal(data.coords[0, :, 0, 0], [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(data.coords[1, :, 0, 0], [100, 101, 102, 103, 104])
    np.testing.assert_array_equal(data.lengths, [3, 5])
    assert data.labels.dtype == np.int32 and data.ids == ("a", "b") and data.max_length == 5


def test_pad_autocp_layout():
    padded = pad_autocp([seq(2, 0), seq(4, 10)])
    assert padded.shape == (2, 2, 4, 3)  # (N, C, T_max, V)
    np.testing.assert_array_equal(padded[0, 0, :, 1], [0, 1, np.nan, np.nan])
    np.testing.assert_array_equal(padded[1, 1, 3], [0, 1, 2])  # y = joint index


# --------------------------------------------------------------------------------------------------------
# AutoCP folders

def autocp_folder(path, sets=("val13456", "val27", "test"), num_joints=29):
    path.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(sets):
        seqs = [seq(4 + i, 100 * k + 10 * i, num_joints) for i in range(3)]
        np.save(path / f"{name}_coords.npy", pad_autocp(seqs))
        np.save(path / f"{name}_labels.npy", np.array([1, 0, 0]))
        np.save(path / f"{name}_ids.npy", np.array([f"{name}-{i}" for i in range(3)]))
    return path


def test_autocp_folder_sets_aliases_lengths_and_tiling(tmp_path):
    folder = autocp_folder(tmp_path / "cp_29")
    assert available_splits(folder) == ("train", "val", "test", "val13456", "val27")
    train = load_dataset(folder, "train")
    assert train.ids == ("val13456-0", "val13456-1", "val13456-2")
    np.testing.assert_array_equal(train.lengths, [4, 5, 6])
    assert train.coords.shape == (3, 6, 29, 2) and not np.isnan(train.coords).any()
    np.testing.assert_array_equal(train.coords[0, :, 0, 0], [0, 1, 2, 3, 0, 1])  # tiled from the start
    np.testing.assert_array_equal(train.coords[2, :, 0, 0], 20 + np.arange(6))  # the longest: no NaN
    assert (train.layout_name, train.fps) == ("in-motion-29", 30.0)
    assert load_dataset(folder, "val").ids == load_dataset(folder, "val27").ids
    np.testing.assert_array_equal(load_dataset(folder, "test").labels, [1, 0, 0])
    assert dataset_layout(folder) is IN_MOTION_29


def test_autocp_real_train_set_wins_over_the_alias(tmp_path):
    folder = autocp_folder(tmp_path, sets=("train", "val13456"), num_joints=19)
    assert load_dataset(folder, "train").ids[0] == "train-0"
    assert available_splits(folder) == ("train", "val13456")
    assert dataset_layout(folder) is IN_MOTION_19


def _break(folder, case):
    if case == "coords_ndim":
        np.save(folder / "test_coords.npy", np.zeros((3, 2, 5)))
    elif case == "labels_shape":
        np.save(folder / "test_labels.npy", np.array([1, 0]))
    elif case == "labels_values":
        np.save(folder / "test_labels.npy", np.array([1, 0, 2]))
    elif case == "labels_float":
        np.save(folder / "test_labels.npy", np.array([1.0, 0.0, 0.0]))
    elif case == "duplicate_ids":
        np.save(folder / "test_ids.npy", np.array(["a", "b", "a"]))
    elif case == "pickled_ids":
        np.save(folder / "test_ids.npy", np.array(["a", "b", 3], dtype=object), allow_pickle=True)
    elif case == "missing_labels":
        (folder / "test_labels.npy").unlink()
    elif case == "nan_inside":
        coords = np.load(folder / "test_coords.npy")
        coords[1, 1, 2, 5] = np.nan  # y of joint 5 in frame 2, before the end
        np.save(folder / "test_coords.npy", coords)


@pytest.mark.parametrize(
    "case, message",
    [
        ("coords_ndim", "test_coords.npy: expected float \\(N, 2, T_max, V\\)"),
        ("labels_shape", "set 'test' has 3 recordings but labels \\(2,\\)"),
        ("labels_values", "test_labels.npy: labels must be integers 0 or 1"),
        ("labels_float", "labels must be integers 0 or 1"),
        ("duplicate_ids", "test_ids.npy: duplicate id 'a'"),
        ("pickled_ids", "test_ids.npy: not a readable .npy array"),
        ("missing_labels", "test_labels.npy: file not found"),
        ("nan_inside", "test_coords.npy: recording 1 has NaN inside its first 5 frames"),
    ],
)
def test_autocp_bad_folders(tmp_path, case, message):
    folder = autocp_folder(tmp_path)
    _break(folder, case)
    with pytest.raises(InputError, match=message):
        load_dataset(folder, "test")


def test_autocp_zero_length_and_unknown_sets(tmp_path):
    folder = autocp_folder(tmp_path)
    coords = np.load(folder / "test_coords.npy")
    coords[2, 0, 0, 0] = np.nan
    np.save(folder / "test_coords.npy", coords)
    with pytest.raises(InputError, match="recording 2 has no frames"):
        load_dataset(folder, "test")
    with pytest.raises(InputError, match="no set 'val1' \\(has train, val, test, val13456, val27\\)"):
        load_dataset(folder, "val1")
    with pytest.raises(InputError, match="not a directory"):
        load_dataset(tmp_path / "none", "test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no manifest.json and no <set>_coords.npy"):
        available_splits(tmp_path / "empty")
    odd = autocp_folder(tmp_path / "odd", sets=("test",), num_joints=5)
    with pytest.raises(InputError, match="no built-in layout has 5 joints"):
        dataset_layout(odd)


# --------------------------------------------------------------------------------------------------------
# jaxcp's own format

def jaxcp_folder(path, layout=TINY):
    path.mkdir(parents=True, exist_ok=True)
    infants = [("a", 1, "train", 0, 4), ("b", 0, "train", 1, 6), ("c", 0, "test", -1, 5)]
    seqs = {key: seq(n, 10 * k, layout.num_joints) for k, (key, _, _, _, n) in enumerate(infants)}
    for split in ("train", "test"):
        members = [i for i in infants if i[2] == split]
        ids = [m[0] for m in members]
        write_split(path, split, ids, [m[1] for m in members], [seqs[i] for i in ids])
    entries = [InfantEntry(key, label, split, fold, n, f"orgcoords_{key}.csv", raw_frames=n)
               for key, label, split, fold, n in infants]
    write_manifest(path, new_manifest(layout_to_dict(layout), 30.0, {"note": "test"}, entries))
    return path, seqs


def test_jaxcp_folder_round_trip(tmp_path):
    folder, seqs = jaxcp_folder(tmp_path / "out")
    manifest = read_manifest(folder)
    assert manifest.splits == ("train", "test") and manifest.jaxcp_version == __version__
    assert manifest.layout_name == "tiny" and manifest.fps == 30.0 and manifest.settings == {"note": "test"}
    assert manifest.split_of() == {"a": "train", "b": "train", "c": "test"}
    assert [e.fold for e in manifest.infants] == [0, 1, -1]
    assert available_splits(folder) == ("train", "test")
    train = load_dataset(folder, "train")
    assert train.ids == ("a", "b") and train.layout_name == "tiny"
    np.testing.assert_array_equal(train.lengths, [4, 6])
    np.testing.assert_array_equal(train.coords[0], np.concatenate([seqs["a"], seqs["a"][:2]]))
    np.testing.assert_array_equal(train.labels, [1, 0])
    assert dataset_layout(folder) == TINY
    with pytest.raises(InputError, match="no split 'val' \\(has train, test\\)"):
        load_dataset(folder, "val")
    raw = json.loads((folder / "manifest.json").read_text())
    assert raw["format"] == "jaxcp-processed" and raw["infants"][0]["source"] == "orgcoords_a.csv"


def test_jaxcp_builtin_layout_comes_back_as_the_builtin(tmp_path):
    folder, _ = jaxcp_folder(tmp_path / "out", layout=IN_MOTION_29)
    assert dataset_layout(folder) is IN_MOTION_29


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: "{not json", "cannot read manifest"),
        (lambda d: json.dumps({**d, "format": "other"}), "not a jaxcp manifest"),
        (lambda d: json.dumps({**d, "format_version": 99}), "format version 99, this jaxcp reads 1"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "fps"}), "malformed manifest \\(KeyError"),
        (lambda d: json.dumps({**d, "infants": [{"id": "a"}]}), "malformed manifest \\(TypeError"),
        (lambda d: json.dumps({**d, "infants": [{**d["infants"][0], "length": 9}, *d["infants"][1:]]}),
         "train arrays do not match manifest.json"),
    ],
)
def test_jaxcp_bad_manifests(tmp_path, edit, message):
    folder, _ = jaxcp_folder(tmp_path / "out")
    path = folder / "manifest.json"
    path.write_text(edit(json.loads(path.read_text())))
    with pytest.raises(InputError, match=message):
        load_dataset(folder, "train")
