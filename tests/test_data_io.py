"""Reading raw recordings: CSV and npy files, outcomes, raw folders, and every bad input."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from data_fixtures import TINY, infant_coords, write_csv, write_outcomes

from jaxcp.core.errors import InputError
from jaxcp.data.io import (
    Recording,
    check_fps,
    find_outcomes_file,
    read_csv_recording,
    read_npy_recording,
    read_outcomes,
    read_raw_folder,
    recording_id,
)
from jaxcp.data.skeleton import IN_MOTION_29

HEADER = "frame,head_x,head_y,thorax_x,thorax_y,pelvis_x,pelvis_y"


def write(tmp_path, text, name="orgcoords_7.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------------
# CSV: what is read

def test_csv_hand_made_values(tmp_path):
    path = write(tmp_path, HEADER + "\n1,0.1,0.2,0.3,0.4,0.5,0.6\n2,1.1,1.2,1.3,1.4,1.5,1.6\n")
    rec = read_csv_recording(path, TINY, fps=25.0, label=1)
    assert isinstance(rec, Recording)
    assert (rec.id, rec.fps, rec.label, rec.source) == ("7", 25.0, 1, str(path))
    assert rec.coords.dtype == np.float32 and rec.coords.shape == (2, 3, 2)
    np.testing.assert_allclose(rec.coords[0], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(rec.coords[1, 2], [1.5, 1.6], rtol=1e-6)
    assert rec.num_frames == 2 and rec.duration_s == pytest.approx(2 / 25)


def test_csv_columns_in_any_order_any_case_with_extras(tmp_path):
    coords = infant_coords(TINY, 6, seed=1)
    path = write_csv(tmp_path / "orgcoords_a.csv", TINY, coords, order=[2, 0, 1],
                     extra={"Comment": ["x"] * 6, "time": range(6), "comment": [""] * 6})  # may repeat
    text = path.read_text().replace("pelvis_x", "Pelvis_X")
    path.write_text(text)
    rec = read_csv_recording(path, TINY)
    np.testing.assert_allclose(rec.coords, coords, atol=1e-6)


def test_csv_empty_and_nan_cells_are_missing_in_both_coordinates(tmp_path):
    rows = ["1,,0.2,0.3,0.4,0.5,0.6", "2,1.1,1.2,nan,1.4,1.5,", "3,2.1,2.2,2.3,2.4,2.5,2.6", "4,,,,,3.5,3.6"]
    text = HEADER + "\n" + "\n".join(rows) + "\n"
    rec = read_csv_recording(write(tmp_path, text), TINY)
    missing = np.isnan(rec.coords).any(axis=-1)
    np.testing.assert_array_equal(missing, [[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 0]])
    assert np.isnan(rec.coords[0, 0]).all()  # y was present, x empty: the point is missing
    np.testing.assert_allclose(rec.coords[2, 1], [2.3, 2.4], rtol=1e-6)


def test_csv_confidence_below_threshold_is_missing(tmp_path):
    text = ("frame,head_x,head_y,head_score,thorax_x,thorax_y,thorax_c,pelvis_x,pelvis_y\n"
            "1,0.1,0.1,0.9,0.2,0.2,0.1,0.3,0.3\n"
            "2,0.1,0.1,0.2,0.2,0.2,,0.3,0.3\n"
            "3,0.1,0.1,0.5,0.2,0.2,0.5,0.3,0.3\n")
    path = write(tmp_path, text)
    missing = np.isnan(read_csv_recording(path, TINY, confidence_threshold=0.5).coords).any(axis=-1)
    np.testing.assert_array_equal(missing, [[0, 1, 0], [1, 1, 0], [0, 0, 0]])  # empty confidence: missing
    missing = np.isnan(read_csv_recording(path, TINY, confidence_threshold=0.0).coords).any(axis=-1)
    np.testing.assert_array_equal(missing, [[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_csv_skipped_frame_numbers_become_missing_frames(tmp_path):
    text = HEADER + "\n5,0,0,1,1,2,2\n6,0,0,1,1,2,2\n8,3,3,4,4,5,5\n"
    rec = read_csv_recording(write(tmp_path, text), TINY)
    assert rec.num_frames == 4  # frames 5..8, counted from the first frame of the file
    assert np.isnan(rec.coords[2]).all() and not np.isnan(rec.coords[[0, 1, 3]]).any()
    np.testing.assert_allclose(rec.coords[3, 0], [3, 3])


def test_csv_quotes_crlf_bom_and_blank_lines(tmp_path):
    header = "\ufeff" + HEADER.replace("head_x", '"head_x"')
    text = header + '\r\n1,"0.1",0.2,0.3,0.4,0.5,0.6\r\n\r\n2,1,1,1,1,1,1\r\n'
    path = tmp_path / "orgcoords_q.csv"
    path.write_bytes(text.encode("utf-8"))
    rec = read_csv_recording(path, TINY)
    assert rec.num_frames == 2
    np.testing.assert_allclose(rec.coords[0, 0], [0.1, 0.2], rtol=1e-6)


def test_csv_long_runs_of_empty_cells(tmp_path):
    # ",,,," runs, an empty first and last cell of a line: all must become NaN without shifting cells.
    text = HEADER + "\n1,,,,,0.5,0.6\n2,0.1,0.2,0.3,0.4,,\n3,0.1,0.2,,,,\n"
    rec = read_csv_recording(write(tmp_path, text), TINY)
    np.testing.assert_array_equal(np.isnan(rec.coords).any(-1), [[1, 1, 0], [0, 0, 1], [0, 1, 1]])
    np.testing.assert_allclose(rec.coords[0, 2], [0.5, 0.6], rtol=1e-6)


def test_recording_ids():
    assert recording_id("a/orgcoords_0042.csv") == "0042"
    assert recording_id("orgcoords_a.b.csv") == "a.b"
    assert recording_id("x/17.npy") == "17"
    assert recording_id("outcomes.csv") is None and recording_id("orgcoords_.csv") is None
    assert recording_id("notes.txt") is None


def test_csv_three_minute_29_joint_file_parses_fast(tmp_path):
    coords = infant_coords(IN_MOTION_29, 5400, seed=0)  # 3 minutes at 30 Hz
    path = write_csv(tmp_path / "orgcoords_big.csv", IN_MOTION_29, coords)
    best = min(_timed(lambda: read_csv_recording(path, IN_MOTION_29)) for _ in range(3))
    np.testing.assert_allclose(read_csv_recording(path, IN_MOTION_29).coords, coords, atol=1e-6)
    assert best < 0.25, f"{best:.3f} s"  # about 0.05 s on an idle core; generous for shared CI machines


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------------------
# CSV: bad input, one line naming the file

@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        (HEADER + "\n", "no data rows"),
        ("head_x,head_y,thorax_x,thorax_y,pelvis_x,pelvis_y\n0,0,0,0,0,0\n", "no 'frame' column"),
        ("frame,head_x,head_y,thorax_x,thorax_y\n1,0,0,0,0\n", "no x/y columns for joints .*'pelvis'"),
        ("frame,head_x,thorax_x,thorax_y,pelvis_x,pelvis_y\n1,0,0,0,0,0\n", "joints .*'head'"),
        (HEADER + "\n1,0,0,0,0,0,0\n2,0,abc,0,0,0,0\n", "non-numeric value 'abc' at line 3, column 'head_y'"),
        (HEADER + "\n1,0,0,0,0,0,0\n2,0,,0,0,0,x1\n", "non-numeric value 'x1' at line 3, column 'pelvis_y'"),
        (HEADER + "\n1,0,0,0,0,0,0\n2,0,0,0,0,0\n", "line 3 has 6 cells, the header has 7"),
        (HEADER + ",head_x\n1,0,0,0,0,0,0,0\n", "column 'head_x' appears twice"),
        (HEADER + "\n1,,,1,1,1,1\n2,,,1,1,1,1\n", "joint 'head' is missing in every frame"),
        (HEADER + "\n2,0,0,0,0,0,0\n1,0,0,0,0,0,0\n", "frame numbers do not increase"),
        (HEADER + "\n1,0,0,0,0,0,0\n1,0,0,0,0,0,0\n", "frame numbers do not increase"),
        (HEADER + "\n1.5,0,0,0,0,0,0\n", "'frame' must hold integers"),
        (HEADER + "\n,0,0,0,0,0,0\n", "'frame' must hold integers"),
        (HEADER + "\n1,0,0,0,0,0,0\n1000,0,0,0,0,0,0\n", "frame numbers span 1000 frames"),
        (HEADER + "\n1,0,inf,0,0,0,0\n", "infinite value in column 'head_y'"),
    ],
)
def test_csv_bad_input(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as info:
        read_csv_recording(path, TINY)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_csv_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_csv_recording(tmp_path / "orgcoords_none.csv", TINY)
    path = tmp_path / "orgcoords_bin.csv"
    path.write_bytes(b"frame,\xff\xfe\n")
    with pytest.raises(InputError, match=f"{path}: cannot read file"):
        read_csv_recording(path, TINY)


@pytest.mark.parametrize("fps", [0, -30, float("nan"), float("inf"), "fast"])
def test_bad_fps(tmp_path, fps):
    path = write(tmp_path, HEADER + "\n1,0,0,0,0,0,0\n")
    with pytest.raises(InputError, match="frame rate must be"):
        read_csv_recording(path, TINY, fps=fps)
    with pytest.raises(InputError, match="frame rate must be"):
        check_fps(fps)
    assert check_fps("12.5") == 12.5


# --------------------------------------------------------------------------------------------------------
# npy

def test_npy_round_trip(tmp_path):
    coords = infant_coords(TINY, 10).astype(np.float64)
    coords[3, 1] = np.nan
    np.save(tmp_path / "k9.npy", coords)
    rec = read_npy_recording(tmp_path / "k9.npy", TINY, 50.0, label=0)
    assert (rec.id, rec.fps, rec.label) == ("k9", 50.0, 0)
    assert rec.coords.dtype == np.float32
    np.testing.assert_allclose(rec.coords, coords, rtol=1e-6)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((10, 3)), "expected shape \\(T, 3, 2\\) for layout 'tiny', got \\(10, 3\\)"),
        (np.zeros((10, 2, 3)), "expected shape \\(T, 3, 2\\)"),
        (np.zeros((10, 3, 3)), "expected shape \\(T, 3, 2\\)"),
        (np.zeros((0, 3, 2)), "no frames"),
        (np.array([["a", "b"]] * 3)[None].repeat(2, 0), "expected numbers"),
        (np.full((4, 3, 2), np.nan), "joint 'head' is missing in every frame"),
        (np.full((4, 3, 2), np.inf), "infinite coordinates"),
    ],
)
def test_npy_bad_input(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(InputError, match=message) as info:
        read_npy_recording(path, TINY, 30.0)
    assert str(info.value).startswith(str(path))


def test_npy_unreadable(tmp_path):
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a readable .npy array"):
        read_npy_recording(pickled, TINY, 30.0)
    text = tmp_path / "text.npy"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a readable .npy array"):
        read_npy_recording(text, TINY, 30.0)
    with pytest.raises(InputError, match="file not found"):
        read_npy_recording(tmp_path / "none.npy", TINY, 30.0)
    np.save(tmp_path / "ok.npy", np.zeros((3, 3, 2)))
    with pytest.raises(InputError, match="frame rate must be > 0"):
        read_npy_recording(tmp_path / "ok.npy", TINY, 0.0)


# --------------------------------------------------------------------------------------------------------
# Outcomes

def test_outcomes_semicolon_comma_quotes_extras_and_blank_lines(tmp_path):
    path = write(tmp_path, "id;outcome;note\n a ;1;x\n\n|b;c|;0\n17; 0 \n", "outcomes.csv")
    assert read_outcomes(path) == {"a": 1, "b;c": 0, "17": 0}
    path = write(tmp_path, "id,outcome\nx,1\ny,0\n", "outcomes.csv")
    assert read_outcomes(path) == {"x": 1, "y": 0}


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("id;outcome\n", "no outcomes below the header"),
        ("id;outcome\na;2\n", "line 2: outcome '2' of id 'a' is not 0 or 1"),
        ("id;outcome\na;1\nb;yes\n", "line 3: outcome 'yes' of id 'b' is not 0 or 1"),
        ("id;outcome\na;\n", "outcome '' of id 'a' is not 0 or 1"),
        ("id;outcome\na;1\na;0\n", "line 3: duplicate id 'a'"),
        ("id;outcome\na\n", "line 2: expected 'id;outcome'"),
        ("id;outcome\n;1\n", "line 2: empty id"),
        ("a;1\nb;0\n", "line 1 looks like data"),
    ],
)
def test_outcomes_bad_input(tmp_path, text, message):
    path = write(tmp_path, text, "outcomes.csv")
    with pytest.raises(InputError, match=message) as info:
        read_outcomes(path)
    assert str(info.value).startswith(str(path))


# --------------------------------------------------------------------------------------------------------
# Raw folders

def _raw(tmp_path, ids, outcomes=None, coords_dir=False, frames=20):
    folder = tmp_path / "raw"
    (folder / "coords").mkdir(parents=True, exist_ok=True)
    target = folder / "coords" if coords_dir else folder
    for k, key in enumerate(ids):
        write_csv(target / f"orgcoords_{key}.csv", TINY, infant_coords(TINY, frames, seed=k))
    if outcomes is not None:
        write_outcomes(folder / "outcomes.csv", outcomes)
    return folder


def test_raw_folder_matches_sorts_and_labels(tmp_path):
    folder = _raw(tmp_path, ["b", "a"], {"a": 1, "b": 0})
    np.save(folder / "c.npy", infant_coords(TINY, 15, seed=9))
    write_outcomes(folder / "outcomes.csv", {"a": 1, "b": 0, "c": 1})
    recs = read_raw_folder(folder, TINY, 30.0)
    assert [(r.id, r.label, r.num_frames) for r in recs] == [("a", 1, 20), ("b", 0, 20), ("c", 1, 15)]
    np.testing.assert_allclose(recs[1].coords, infant_coords(TINY, 20, seed=0), atol=1e-6)


def test_raw_folder_movementoutcome_layout(tmp_path):
    folder = _raw(tmp_path, ["1", "2"], coords_dir=True)
    write_outcomes(folder / "outcomes" / "outcomes.csv", {"1": 0, "2": 1})
    assert [r.id for r in read_raw_folder(folder, TINY)] == ["1", "2"]
    assert find_outcomes_file(folder) == folder / "outcomes" / "outcomes.csv"


def test_raw_folder_recording_without_outcome_is_warned_and_skipped(tmp_path):
    folder = _raw(tmp_path, ["a", "b", "c"], {"a": 1, "c": 0})
    messages = []
    recs = read_raw_folder(folder, TINY, warn=messages.append)
    assert [r.id for r in recs] == ["a", "c"]
    assert len(messages) == 1 and "orgcoords_b.csv" in messages[0] and "no outcome" in messages[0]
    with pytest.warns(UserWarning, match="id 'b' has no outcome"):
        read_raw_folder(folder, TINY)


@pytest.mark.parametrize(
    "case, message",
    [
        ("orphan", "outcomes.csv: no recording for outcome id 'zz'"),
        ("no_outcomes", "no outcomes file"),
        ("two_outcomes", "two outcomes files"),
        ("duplicate", "duplicate id 'a'"),
        ("empty", "no recordings"),
        ("bad_label", "outcome '7' of id 'a' is not 0 or 1"),
        ("bad_fps", "frame rate must be > 0"),
        ("bad_recording", "orgcoords_b.csv: non-numeric value"),
    ],
)
def test_raw_folder_bad_input(tmp_path, case, message):
    ids = [] if case == "empty" else ["a", "b"]
    folder = _raw(tmp_path, ids, None if case == "no_outcomes" else {"a": 1, "b": 0})
    fps = 0.0 if case == "bad_fps" else 30.0
    if case == "orphan":
        write_outcomes(folder / "outcomes.csv", {"a": 1, "b": 0, "zz": 1})
    if case == "two_outcomes":
        write_outcomes(folder / "outcomes" / "outcomes.csv", {"a": 1})
    if case == "duplicate":
        np.save(folder / "a.npy", infant_coords(TINY, 10))
    if case == "bad_label":
        write_outcomes(folder / "outcomes.csv", {"a": 7, "b": 0})
    if case == "bad_recording":
        path = folder / "orgcoords_b.csv"
        path.write_text(path.read_text().replace("\n2,", "\n2,oops", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=message) as info:
            read_raw_folder(folder, TINY, fps)
    assert "\n" not in str(info.value)


def test_raw_folder_must_be_a_directory(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        read_raw_folder(tmp_path / "none", TINY)
