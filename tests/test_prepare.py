"""`python -m jaxcp.prepare`: end to end on small raw folders, settings, atomic output and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from data_fixtures import TINY, infant_coords, make_raw_dir, write_csv, write_outcomes

from jaxcp.data.dataset import available_splits, load_dataset, read_manifest
from jaxcp.data.io import read_csv_recording
from jaxcp.data.prepare import prepare_dataset
from jaxcp.data.preprocess import PreprocessConfig, preprocess
from jaxcp.data.skeleton import IN_MOTION_29, layout_to_dict
from jaxcp.data.splits import size_warning, stratified_split
from jaxcp.prepare import main

LABELS = {f"{k:02d}": int(k % 4 == 0) for k in range(12)}  # 3 CP, 9 non-CP


@pytest.fixture
def tiny_layout(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(layout_to_dict(TINY), sort_keys=False))
    return str(path)


@pytest.fixture
def raw(tmp_path):
    return make_raw_dir(tmp_path / "raw", TINY, LABELS, num_frames=200)


def run(raw_dir, out_dir, layout, *extra):
    return main([str(raw_dir), str(out_dir), "--layout", layout, *extra])


def test_prepare_end_to_end(tmp_path, raw, tiny_layout, capsys):
    out = tmp_path / "out"
    assert run(raw, out, tiny_layout) == 0
    summary = capsys.readouterr().out
    manifest = read_manifest(out)
    expected = stratified_split(list(LABELS), list(LABELS.values()))
    got = {name: tuple(sorted(e.id for e in manifest.infants if e.split == name)) for name in expected}
    assert got == expected
    assert manifest.layout_name == "tiny" and manifest.fps == 30.0
    assert manifest.settings["preprocess"]["trunk_multiple"] == 2.0 and manifest.settings["raw_fps"] == 30.0
    for split in available_splits(out):
        data = load_dataset(out, split)
        assert data.labels.tolist() == [LABELS[i] for i in data.ids]
        for i, key in enumerate(data.ids):  # identical to reading and preprocessing the file directly
            recording = read_csv_recording(raw / f"orgcoords_{key}.csv", TINY)
            direct = preprocess(recording, TINY, PreprocessConfig())
            np.testing.assert_allclose(data.coords[i, : data.lengths[i]], direct, rtol=1e-6)
    test_rows = [line.split() for line in summary.splitlines() if line.startswith(("test", "total"))]
    assert test_rows[0][1:4] == [str(len(expected["test"])), "1", str(len(expected["test"]) - 1)]
    assert test_rows[1][1:5] == ["12", "3", "9", f"{12 * 200 / 30 / 60:.1f}"]
    assert "missing data: 0.00%" in summary
    assert all(line.endswith("  *") for line in summary.splitlines() if line.startswith(("train", "val", "test")))
    assert "* fewer than 5 infants of a class" in summary and "data quality: 0 of 12 recordings flagged" in summary
    pool = [e for e in manifest.infants if e.split != "test"]
    assert sorted({e.fold for e in pool}) == list(range(7)) and all(e.fold == -1 for e in manifest.infants
                                                                     if e.split == "test")


def test_prepare_default_layout_and_movementoutcome_folders(tmp_path, capsys):
    raw = tmp_path / "raw"
    (raw / "coords").mkdir(parents=True)
    labels = {"a": 1, "b": 0, "c": 0, "d": 1}
    for k, key in enumerate(labels):
        write_csv(raw / "coords" / f"orgcoords_{key}.csv", IN_MOTION_29, infant_coords(IN_MOTION_29, 160, k))
    write_outcomes(raw / "outcomes" / "outcomes.csv", labels)
    assert main([str(raw), str(tmp_path / "out")]) == 0
    assert read_manifest(tmp_path / "out").layout_name == "in-motion-29"
    assert sum(load_dataset(tmp_path / "out", s).num_infants for s in available_splits(tmp_path / "out")) == 4


def _all_coords(out):
    data = [load_dataset(out, s) for s in available_splits(out)]
    return {key: d.coords[i, : d.lengths[i]] for d in data for i, key in enumerate(d.ids)}


def test_prepare_settings_fps_trunk_multiple_seed_and_config_file(tmp_path, raw, tiny_layout):
    assert run(raw, tmp_path / "base", tiny_layout) == 0
    assert run(raw, tmp_path / "fps", tiny_layout, "--fps", "60", "--set", "window=50") == 0
    assert run(raw, tmp_path / "trunk", tiny_layout, "--set", "preprocess.trunk_multiple=4") == 0
    config = tmp_path / "prepare.yaml"
    config.write_text("split:\n  seed: 99\npreprocess:\n  median_window: 3\n")
    overrides = ["--config", str(config), "--set", "split.test_fraction=0.5"]
    assert run(raw, tmp_path / "cfg", tiny_layout, *overrides) == 0
    base, fps, trunk = (_all_coords(tmp_path / n) for n in ("base", "fps", "trunk"))
    assert all(len(fps[k]) == 100 for k in LABELS)  # 200 frames at 60 Hz -> 100 at 30 Hz
    for key in LABELS:
        np.testing.assert_allclose(trunk[key], base[key] / 2, rtol=1e-5, atol=1e-7)
    manifest = read_manifest(tmp_path / "cfg")
    assert manifest.settings["split"]["seed"] == 99 and manifest.settings["preprocess"]["median_window"] == 3
    assert sum(e.split == "test" for e in manifest.infants) == 7  # 3 - int(1.5) + 9 - int(4.5) = 2 + 5
    assert read_manifest(tmp_path / "fps").settings["raw_fps"] == 60.0


def test_prepare_replaces_an_earlier_dataset(tmp_path, raw, tiny_layout):
    out = tmp_path / "out"
    assert run(raw, out, tiny_layout) == 0
    assert run(raw, out, tiny_layout, "--set", "split.seed=5") == 0
    assert read_manifest(out).settings["split"]["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw", "tiny.yaml"]  # no temporary leftovers
    killed = tmp_path / ".out.k1lled00.tmp"  # what a prepare killed while writing leaves
    killed.mkdir()
    (killed / "train_coords.npy").write_bytes(b"\0" * 1000)
    assert run(raw, out, tiny_layout) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw", "tiny.yaml"]


def test_prepare_skips_with_warnings(tmp_path, raw, tiny_layout, capsys):
    write_csv(raw / "orgcoords_extra.csv", TINY, infant_coords(TINY, 200))  # no outcome
    gappy = infant_coords(TINY, 200, seed=5)
    gappy[20:120, 0] = np.nan  # 100 of 600 joint-frames in one long gap: 16.7%
    write_csv(raw / "orgcoords_05.csv", TINY, gappy)
    write_csv(raw / "orgcoords_06.csv", TINY, infant_coords(TINY, 100))  # shorter than a window
    out = tmp_path / "out"
    overrides = ["--set", "preprocess.max_missing_fraction=0.1", "--set", "short=skip"]
    assert run(raw, out, tiny_layout, *overrides) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "orgcoords_extra.csv: id 'extra' has no outcome" in err
    assert "orgcoords_05.csv: 16.7% of joint-frames are in gaps longer than 0.5 s" in err
    assert "orgcoords_06.csv: 100 frames at 30 Hz, shorter than a window of 150 frames; skipped" in err
    manifest = read_manifest(out)
    assert {s["id"]: s["reason"] for s in manifest.skipped} == {
        "extra": "no outcome", "05": "too incomplete", "06": "shorter than a window"}
    assert {e.id for e in manifest.infants} == set(LABELS) - {"05", "06"}


# --------------------------------------------------------------------------------------------------------
# Bad input: one line naming the file, exit status 2, OUT_DIR untouched

def _corrupt(raw, tmp_path, case):
    """Apply one kind of bad input; returns (extra arguments, text the error line must contain)."""
    f = raw / "orgcoords_03.csv"
    text = f.read_text()
    cases = {
        "empty file": lambda: (f.write_text(""), f"{f}: empty file"),
        "no frame column": lambda: (f.write_text(text.replace("frame,", "time,", 1)),
                                    f"{f}: no 'frame' column"),
        "missing joint columns": lambda: (f.write_text(text.replace("head_x", "nose_x", 1)),
                                          f"{f}: no x/y columns for joints of layout 'tiny': 'head'"),
        "non-numeric cell": lambda: (f.write_text(text.replace("\n7,", "\n7,abc", 1)),
                                     f"{f}: non-numeric value"),
        "joint missing everywhere": lambda: (write_csv(f, TINY, _without_joint(0)),
                                             f"{f}: joint 'head' is missing in every frame"),
        "shorter than a window": lambda: (write_csv(f, TINY, infant_coords(TINY, 120)),
                                          f"{f}: 120 frames at 30 Hz, shorter than a window of 150 frames"),
        "duplicate ids": lambda: (np.save(raw / "03.npy", infant_coords(TINY, 200)), "duplicate id '03'"),
        "duplicate outcome": lambda: ((raw / "outcomes.csv").write_text("id;outcome\n00;1\n00;0\n"),
                                      "outcomes.csv: line 3: duplicate id '00'"),
        "outcome not 0 or 1": lambda: ((raw / "outcomes.csv").write_text("id;outcome\n00;1\n01;2\n"),
                                       "outcomes.csv: line 3: outcome '2' of id '01' is not 0 or 1"),
        "outcome without recording": lambda: (f.unlink(),
                                              "outcomes.csv: no recording for outcome id '03'"),
        "npy of wrong shape": lambda: (f.unlink(), np.save(raw / "03.npy", np.zeros((200, 4, 2))),
                                       "03.npy: expected shape (T, 3, 2)"),
        "fps zero": lambda: (["--fps", "0"], "--fps: frame rate must be > 0, got '0'"),
        "fps negative": lambda: (["--fps", "-30"], "--fps: frame rate must be > 0"),
        "malformed layout": lambda: (["--layout", str(_write(tmp_path / "l.yaml", "joints: [a, b"))],
                                     "l.yaml: cannot read layout"),
        "inconsistent layout": lambda: (["--layout", str(_write(tmp_path / "l.yaml", _no_part_for_pelvis()))],
                                        "l.yaml: layout 'tiny': joint 'pelvis' is in no part"),
        "unknown layout": lambda: (["--layout", "nothing"], "nothing: not a built-in layout"),
        "unreadable layout": lambda: (["--layout", str(_write_bytes(tmp_path / "l.yaml", b"\xff\xfe"))],
                                      "l.yaml: cannot read layout"),
        "unknown setting": lambda: (["--set", "preprocess.smooth=1"], "unknown key 'smooth'"),
        "bad setting": lambda: (["--set", "preprocess.median_window=4"],
                                "preprocess.median_window: must be an odd number"),
        "no outcomes file": lambda: ((raw / "outcomes.csv").unlink(), "no outcomes file"),
    }
    result = cases[case]()
    extra = next((r for r in result if isinstance(r, list)), [])
    return extra, result[-1]


def _without_joint(v):
    coords = infant_coords(TINY, 200)
    coords[:, v] = np.nan
    return coords


def _no_part_for_pelvis():
    spec = layout_to_dict(TINY)
    spec["parts"] = {"body": ["head", "thorax"]}
    return yaml.safe_dump(spec)


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


def _write(path, text):
    path.write_text(text)
    return path


BAD_INPUTS = [
    "empty file", "no frame column", "missing joint columns", "non-numeric cell", "joint missing everywhere",
    "shorter than a window", "duplicate ids", "duplicate outcome", "outcome not 0 or 1",
    "outcome without recording", "npy of wrong shape", "fps zero", "fps negative", "malformed layout",
    "inconsistent layout", "unknown layout", "unreadable layout", "unknown setting", "bad setting",
    "no outcomes file",
]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_prepare_bad_input(tmp_path, raw, tiny_layout, capsys, case):
    out = tmp_path / "out"
    assert run(raw, out, tiny_layout) == 0  # an earlier good dataset, which must survive
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    extra, expected = _corrupt(raw, tmp_path, case)
    with pytest.raises(SystemExit) as info:
        run(raw, out, tiny_layout, *extra)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_prepare_refuses_to_replace_a_foreign_directory(tmp_path, raw, tiny_layout, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(SystemExit) as info:
        run(raw, out, tiny_layout)
    assert info.value.code == 2
    assert "holds no manifest.json; refusing to replace it" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        run(raw, tmp_path / "file", tiny_layout)


def test_prepare_as_a_module_exits_2(tmp_path):
    command = [sys.executable, "-m", "jaxcp.prepare", str(tmp_path / "none"), str(tmp_path / "o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'none'}: not a directory"
    assert not (tmp_path / "o").exists()


def test_manifest_is_plain_json(tmp_path, raw, tiny_layout):
    run(raw, tmp_path / "out", tiny_layout)
    data = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert data["infants"][0].keys() >= {"id", "label", "split", "fold", "length", "missing_fraction"}


def test_prepare_in_worker_processes_gives_the_same_dataset(tmp_path, tiny_layout, capsys, monkeypatch):
    monkeypatch.setattr("jaxcp.data.prepare.MIN_BYTES_PER_WORKER", 0)  # small files: use the workers anyway
    labels = {f"{k:02d}": int(k % 3 == 0) for k in range(16)}
    raw = make_raw_dir(tmp_path / "raw", TINY, labels, num_frames=160)
    write_csv(raw / "orgcoords_04.csv", TINY, infant_coords(TINY, 100))  # too short: skipped
    assert run(raw, tmp_path / "one", tiny_layout, "--workers", "1", "--set", "short=skip") == 0
    assert run(raw, tmp_path / "two", tiny_layout, "--workers", "2", "--set", "short=skip") == 0
    for name in ("train_coords.npy", "val_ids.npy", "test_labels.npy"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert read_manifest(tmp_path / "two").skipped == read_manifest(tmp_path / "one").skipped
    capsys.readouterr()
    (raw / "orgcoords_09.csv").write_text("")  # bad input in a worker: the same one line, exit 2
    (raw / "orgcoords_12.csv").write_text("frame\n1\n")
    with pytest.raises(SystemExit) as info:
        run(raw, tmp_path / "two", tiny_layout, "--workers", "2")
    assert info.value.code == 2
    err = capsys.readouterr().err  # the first bad file in id order, as without workers
    assert err.count("\n") == 1 and "orgcoords_04.csv: 100 frames at 30 Hz, shorter than a window" in err


def test_prepare_dataset_library_call(tmp_path, raw):
    warnings = []
    write_csv(raw / "orgcoords_zz.csv", TINY, infant_coords(TINY, 200))  # no outcome
    manifest = prepare_dataset(raw, tmp_path / "out", layout=TINY, seed=11, warn=warnings.append)
    assert manifest.settings["split"]["seed"] == 11
    assert read_manifest(tmp_path / "out").settings == manifest.settings
    assert "'zz' has no outcome" in warnings[0]
    expected = stratified_split(list(LABELS), list(LABELS.values()), seed=11)
    assert tuple(sorted(e.id for e in manifest.infants if e.split == "val")) == expected["val"]
    # 3 CP infants in all: every split has one, too few for any interval; each split warns once
    small = [size_warning(f"split {name!r}", *counts(expected[name])) for name in ("train", "val", "test")]
    assert warnings[1:] == small and all(small)


def counts(members) -> tuple[int, int]:
    """(CP, non-CP) among ids of LABELS."""
    positive = sum(LABELS[key] for key in members)
    return positive, len(members) - positive


def test_prepare_with_fixed_test_and_val_ids(tmp_path, raw, tiny_layout, capsys):
    (tmp_path / "test.txt").write_text("# held out by the clinic\n03\n\n07  # twin\n00\n")
    (tmp_path / "val.txt").write_text("01\n02\n")
    ids = ["--test-ids", str(tmp_path / "test.txt"), "--val-ids", str(tmp_path / "val.txt")]
    assert run(raw, tmp_path / "out", tiny_layout, *ids) == 0
    out, err = capsys.readouterr()
    manifest = read_manifest(tmp_path / "out")
    split = {name: sorted(e.id for e in manifest.infants if e.split == name) for name in ("train", "val", "test")}
    assert split["test"] == ["00", "03", "07"] and split["val"] == ["01", "02"] and len(split["train"]) == 7
    assert manifest.settings["fixed_split"] == {"test": {"file": str(tmp_path / "test.txt"), "ids": ["03", "07", "00"]},
                                                "val": {"file": str(tmp_path / "val.txt"), "ids": ["01", "02"]}}
    assert f"test split fixed by {tmp_path / 'test.txt'} (3 ids)" in out
    assert "warning: split 'val' has 0 CP and 2 non-CP infants" in err  # 00 is the only CP among the fixed
    # only the test split fixed: the others are drawn from the rest with the seed
    assert run(raw, tmp_path / "only", tiny_layout, "--test-ids", str(tmp_path / "test.txt")) == 0
    only = read_manifest(tmp_path / "only")
    assert sorted(e.id for e in only.infants if e.split == "test") == ["00", "03", "07"]
    assert "val" not in only.settings["fixed_split"]


@pytest.mark.parametrize("case", ["unknown id", "in both files", "missing file"])
def test_prepare_bad_id_files(tmp_path, raw, tiny_layout, capsys, case):
    test_file, val_file = tmp_path / "test.txt", tmp_path / "val.txt"
    test_file.write_text("03\n" + ("x42\n" if case == "unknown id" else ""))
    val_file.write_text("01\n" + ("03\n" if case == "in both files" else ""))
    if case == "missing file":
        val_file.unlink()
    expected = {"unknown id": f"{test_file}: id 'x42' is not in the cohort",
                "in both files": f"{val_file}: id '03' is also in {test_file}",
                "missing file": f"{val_file}: id file not found"}[case]
    with pytest.raises(SystemExit) as info:
        run(raw, tmp_path / "out", tiny_layout, "--test-ids", str(test_file), "--val-ids", str(val_file))
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()
