"""End to end on a tiny synthetic cohort: train -> evaluate -> predict -> export, resuming, and bad input.

The commands run in-process through their `main(argv)`, so that they share compiled programs.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, TINY_OVERRIDES, WINDOW, cohort

from jaxcp import evaluate, export, predict, train
from jaxcp.clinical import inference, metrics, predictor
from jaxcp.core.runtime import default_cache_dir
from jaxcp.data import synth
from jaxcp.data.dataset import load_dataset
from jaxcp.data.prepare import PrepareConfig, prepare_dataset
from jaxcp.model import checkpoint
from jaxcp.training import run as training_run
from jaxcp.training import students
from jaxcp.training.archfile import arch_file_text

EPOCHS = 3
ROOT = Path(__file__).resolve().parents[1]


def run_main(main, argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a command's main."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def train_argv(arch_file: Path, out: Path) -> list:
    sets = [x for item in TINY_OVERRIDES for x in ("--set", item)]
    return [
        "--arch",
        arch_file,
        "--data",
        cohort(),
        "--out",
        out,
        "--epochs",
        EPOCHS,
        "--seeds",
        2,
        "--space",
        "none",
        "--quiet",
        *sets,
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("commands")
    (root / "arch.yaml").write_text(arch_file_text(TINY_ARCH, TINY_HPARAMS))
    return root


@pytest.fixture(scope="module")
def run_dir(workdir) -> Path:
    out = workdir / "run"
    assert train.main([str(a) for a in train_argv(workdir / "arch.yaml", out)]) == 0
    return out


def test_train_writes_a_run_folder(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == EPOCHS and len(summary["seeds"]) == 2
    for k, seed in enumerate(summary["seeds"]):
        meta = checkpoint.read_meta(run_dir / f"seed_{k}")
        assert seed["checkpoint"] == f"seed_{k}" and seed["status"] == "ok"
        assert meta["best_epoch"] == seed["best_epoch"] and meta["metrics"]["auc"] == seed["reward"]
        assert meta["data"]["preprocess"]["trunk_multiple"] == PrepareConfig().preprocess.trunk_multiple
        assert [h["epoch"] for h in seed["history"]] == list(range(1, EPOCHS + 1))
    assert (run_dir / "progress" / "progress.json").is_file() and (run_dir / "arch.yaml").is_file()


def test_a_finished_run_is_not_trained_again(run_dir, workdir, capsys):
    before = (run_dir / "summary.json").read_text()
    code, out, err = run_main(train.main, train_argv(workdir / "arch.yaml", run_dir), capsys)
    assert code == 0 and "already finished" in out
    assert (run_dir / "summary.json").read_text() == before


def test_restart_trains_a_finished_run_again_from_scratch(run_dir, workdir, capsys):
    """--restart on a finished run folder (here with a tampered summary and a stray file in a seed folder)
    trains it again from epoch 1: the same result as the original run, the stray file gone."""
    out = Path(shutil.copytree(run_dir, workdir / "restarted"))
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "seeds": []}))
    (out / "seed_0" / "stray.txt").write_text("from the old run")
    code, stdout, err = run_main(train.main, [*train_argv(workdir / "arch.yaml", out), "--restart"], capsys)
    assert code == 0, err
    assert "already finished" not in stdout and "resuming" not in stdout
    seeds = [json.loads((d / "summary.json").read_text())["seeds"] for d in (run_dir, out)]
    assert seeds[0] == seeds[1] and len(seeds[0]) == 2
    assert not (out / "seed_0" / "stray.txt").exists()


def test_an_interrupted_run_stops_with_exit_130_and_keeps_its_progress(workdir, monkeypatch, capsys):
    """Ctrl-C (KeyboardInterrupt) after the state of epoch 1 is saved: exit 130, a one-line hint, no
    summary, the saved progress kept (that a rerun resumes to the same result is checked after SIGKILLs)."""
    out = workdir / "interrupted"
    save = training_run.save_run_state

    def save_then_stop(path, arrays, info):
        save(path, arrays, info)
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(training_run, "save_run_state", save_then_stop)
    code, _, err = run_main(train.main, train_argv(workdir / "arch.yaml", out), capsys)
    assert code == 130 and "run the same command again" in err
    assert not (out / "summary.json").exists()
    assert json.loads((out / "progress" / "progress.json").read_text())["epoch"] == 1


# The command in a process of its own, appending a line to the file $JAXCP_TEST_EVENTS for every program
# it loads from the persistent compilation cache, as it happens (a SIGKILL leaves no time to write at exit).
_TRAIN_WITH_EVENTS = """
import os, sys
import jax
log = open(os.environ["JAXCP_TEST_EVENTS"], "a", buffering=1)
def on_event(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
        log.write("hit\\n")
jax.monitoring.register_event_listener(on_event)
from jaxcp import train
sys.exit(train.main(sys.argv[1:]))
"""


def _start_train(argv, events: Path, cache: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "JAXCP_NO_CACHE"}
    # every program is cached whatever its compile time: with the default 1 s threshold a program that
    # compiled just under it in the first process and just over it in the second made a new entry (CI flake)
    env.update(JAXCP_CACHE_DIR=str(cache), JAXCP_TEST_EVENTS=str(events), PYTHONPATH=str(ROOT),
               JAXCP_CACHE_MIN_COMPILE_S="0")
    return subprocess.Popen([sys.executable, "-c", _TRAIN_WITH_EVENTS, *map(str, argv)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _kill_when(process: subprocess.Popen, condition, timeout: float = 600.0) -> None:
    """SIGKILL `process` as soon as `condition()` holds (polled every millisecond)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def _saving(out: Path) -> bool:
    """A checkpoint or progress folder is being written: its temporary folder is there (jaxcp.core.atomic)."""
    return out.is_dir() and any(p.name.endswith(".tmp") and p.is_dir() for p in out.iterdir())


def _progress_epoch(out: Path) -> int:
    try:
        return json.loads((out / "progress" / "progress.json").read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def test_a_killed_run_resumes_to_the_same_result_and_compiles_nothing_cached(run_dir, workdir, tmp_path):
    """`jaxcp train` in a process of its own, SIGKILLed while a checkpoint is being written (its temporary
    folder exists, and still does after the kill) after the progress of epoch 1 has been saved; a second
    start resumes from the last saved progress and finishes. Its checkpoints and summary equal the
    uninterrupted run's bit for bit. The persistent compilation cache is the session's (tests/conftest.py):
    once the first process has run it holds the training programs, and the second process loads them (cache
    hits) and compiles none of them again."""
    out, cache, events = workdir / "killed", default_cache_dir(), [tmp_path / f"events_{i}" for i in range(2)]
    argv = train_argv(workdir / "arch.yaml", out)
    _kill_when(_start_train(argv, events[0], cache), lambda: _progress_epoch(out) >= 1 and _saving(out))
    assert any(p.name.endswith(".tmp") for p in out.iterdir())  # killed in the middle of a save
    assert not (out / "summary.json").exists()
    programs = lambda: sorted(p.name for p in cache.iterdir() if re.match(r"jit__(init|epoch|predict)_one-", p.name))  # noqa: E731
    after_first = programs()
    second = _start_train(argv, events[1], cache)
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr
    assert "resuming after epoch" in stdout
    for k in range(2):
        a, b = checkpoint.restore_model(run_dir / f"seed_{k}"), checkpoint.restore_model(out / f"seed_{k}")
        for x, y in zip(_leaves(a.variables), _leaves(b.variables), strict=True):
            np.testing.assert_array_equal(x, y)
    seeds = [json.loads((d / "summary.json").read_text())["seeds"] for d in (run_dir, out)]
    assert seeds[0] == seeds[1]
    # The persistent compilation cache (shared with the in-process runs, tests/conftest.py): once the
    # first process has run, the training programs are in it (JAXCP_CACHE_MIN_COMPILE_S=0); the second
    # process loads them (cache hits) and compiles none of them again (no new entry is written for them).
    # jax reports a backend-compile event for a cache hit too, so hits and entries are what is counted.
    assert after_first
    assert events[1].read_text().splitlines().count("hit") >= 1
    assert programs() == after_first


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_train_refuses_foreign_or_different_folders(run_dir, workdir, capsys):
    foreign = workdir / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = run_main(train.main, train_argv(workdir / "arch.yaml", foreign), capsys)
    assert code == 2 and "not a jaxcp training run" in err and len(err.strip().splitlines()) == 1
    argv = train_argv(workdir / "arch.yaml", run_dir)
    argv[argv.index("--epochs") + 1] = EPOCHS + 1
    code, _, err = run_main(train.main, argv, capsys)
    assert code == 2 and "different settings: config.epochs" in err


# ---------------------------------------------------------------------------------------------- evaluate


def expected_scores(run_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, list]:
    """(labels, risk, per-model risks) computed here: each model's window probabilities, median over models,
    median over each infant's windows."""
    from jaxcp.data.windows import make_eval_windows

    dataset = load_dataset(cohort(), split)
    windows = make_eval_windows(dataset, WINDOW, TINY_CONFIG.hop)
    probs = np.stack([predictor.load_checkpoint(run_dir / f"seed_{k}")(windows.windows)[0] for k in range(2)])
    per_window = np.median(probs, axis=0)
    risk = np.array([np.median(per_window[windows.owner == i]) for i in range(dataset.num_infants)])
    model_risks = [
        np.array([np.median(p[windows.owner == i]) for i in range(dataset.num_infants)]) for p in probs
    ]
    return dataset.labels, risk, model_risks


def test_evaluate_ensemble_report_holds_the_numbers(run_dir, tmp_path, capsys):
    code, out, err = run_main(
        evaluate.main,
        [
            "--checkpoint",
            run_dir,
            "--data",
            cohort(),
            "--split",
            "test",
            "--out",
            tmp_path / "report",
            "--bootstrap",
            200,
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads((tmp_path / "report" / "metrics.json").read_text())
    labels, risk, model_risks = expected_scores(run_dir, "test")
    np.testing.assert_allclose([i["risk"] for i in result["infants"]], risk, rtol=1e-6)
    predicted = risk >= 0.5
    s = result["subject"]
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (
        int((predicted & (labels == 1)).sum()),
        int((predicted & (labels == 0)).sum()),
        int((~predicted & (labels == 0)).sum()),
        int((~predicted & (labels == 1)).sum()),
    )
    assert s["auc"] == pytest.approx(metrics.roc_auc(labels, risk))
    low, high = metrics.clopper_pearson(s["tp"] + s["tn"], len(labels))
    assert (s["accuracy_ci_low"], s["accuracy_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    certain = metrics.ensemble_certainty(np.stack(model_risks), 0.5, risk=risk)
    assert [i["certain"] for i in result["infants"]] == certain.tolist()
    report = (tmp_path / "report" / "report.md").read_text()
    row = f"| {s['tp']} | {s['fp']} | {s['tn']} | {s['fn']} | "
    assert (
        row in report
        and "0.5 (default)" in report
        and f"{s['accuracy']:.3f} ({low:.3f}-{high:.3f}, width {high - low:.2f})" in report
    )
    for name in ("roc.png", "scores.png", "infants.csv"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert (tmp_path / "report" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_threshold_chosen_on_validation(run_dir, tmp_path, capsys):
    code, _, err = run_main(
        evaluate.main,
        [
            "--checkpoint",
            run_dir / "seed_0",
            "--data",
            cohort(),
            "--threshold",
            "youden",
            "--out",
            tmp_path,
            "--format",
            "html",
            "--bootstrap",
            50,
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads((tmp_path / "metrics.json").read_text())
    val = load_dataset(cohort(), "val")
    from jaxcp.data.windows import make_eval_windows

    w = make_eval_windows(val, WINDOW, TINY_CONFIG.hop)
    probs = predictor.load_checkpoint(run_dir / "seed_0")(w.windows)[0]
    expected = metrics.youden_threshold(val.labels, metrics.subject_scores(probs, w.owner, val.num_infants))
    assert result["threshold"]["value"] == pytest.approx(expected)
    assert result["threshold"]["chosen_on"] == "val" and result["certainty"] is None
    assert "chosen on the &#x27;val&#x27; split" in (tmp_path / "report.html").read_text()
    # sensitivity:S from the command line: the highest threshold with validation sensitivity >= S
    code, _, err = run_main(evaluate.main, ["--checkpoint", run_dir / "seed_0", "--data", cohort(), "--threshold",
                                            "sensitivity:0.75", "--out", tmp_path / "s", "--bootstrap", 10], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "s" / "metrics.json").read_text())
    scores = metrics.subject_scores(probs, w.owner, val.num_infants)
    expected = metrics.threshold_for_sensitivity(val.labels, scores, 0.75)
    assert result["threshold"]["value"] == pytest.approx(expected) and result["threshold"]["chosen_on"] == "val"
    assert (scores[val.labels == 1] >= expected).mean() >= 0.75 > (scores[val.labels == 1] > expected).mean()


# ------------------------------------------------------------------------------------------ predict, export


def test_predict_matches_evaluate_and_writes_movementoutcome_files(run_dir, tmp_path, capsys):
    test_ids = load_dataset(cohort(), "test").ids
    raw = cohort().parent / "raw"
    files = [raw / f"orgcoords_{i}.csv" for i in test_ids]
    code, out, err = run_main(
        predict.main, ["--checkpoint", run_dir, *files, "--out", tmp_path, "--contributions"], capsys
    )
    assert code == 0, err
    labels, risk, _ = expected_scores(run_dir, "test")
    for i, key in enumerate(test_ids):
        rows = list(csv.DictReader((tmp_path / f"{key}_results.csv").open()))
        assert list(rows[0]) == [
            "id",
            "risk",
            "prediction_threshold",
            "positive_classification",
            "certain_classification",
            "class",
        ]
        assert rows[0]["id"] == key and rows[0]["class"] == ("CP" if risk[i] >= 0.5 else "no CP")
        assert float(rows[0]["risk"]) == pytest.approx(risk[i], rel=1e-6)
        assert rows[0]["positive_classification"] == str(bool(risk[i] >= 0.5))
        windows = json.loads((tmp_path / f"{key}_windows.json").read_text())
        assert np.median(windows["window_probabilities"]) == pytest.approx(risk[i], rel=1e-6)
        cam = list(csv.reader((tmp_path / f"{key}_cam.csv").open()))
        assert cam[0] == list(LAYOUT.joints) and all(0 <= float(v) <= 1 for v in cam[1])
        assert (tmp_path / f"{key}_cam.png").stat().st_size > 0


def test_export_then_predict_gives_the_checkpoint_probabilities(run_dir, tmp_path, capsys):
    model_file = tmp_path / "model.jaxcp"
    code, out, err = run_main(export.main, ["--checkpoint", run_dir / "seed_1", "--out", model_file], capsys)
    assert code == 0 and model_file.is_file(), err
    raw = cohort().parent / "raw"
    key = load_dataset(cohort(), "test").ids[0]
    argv = [raw / f"orgcoords_{key}.csv", "--out"]
    assert run_main(predict.main, ["--model", model_file, *argv, tmp_path / "a"], capsys)[0] == 0
    assert run_main(predict.main, ["--checkpoint", run_dir / "seed_1", *argv, tmp_path / "b"], capsys)[0] == 0
    a = json.loads((tmp_path / "a" / f"{key}_windows.json").read_text())
    b = json.loads((tmp_path / "b" / f"{key}_windows.json").read_text())
    np.testing.assert_allclose(a["window_probabilities"], b["window_probabilities"], rtol=1e-5, atol=1e-6)
    assert "certain_classification" not in (tmp_path / "a" / f"{key}_results.csv").read_text()  # one model
    code, _, err = run_main(export.main, ["--checkpoint", run_dir, "--out", tmp_path / "two.jaxcp"], capsys)
    assert code == 2 and "holds 2 models" in err


# ---------------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def other_layout(tmp_path_factory) -> Path:
    """A tiny cohort of in-motion-19 recordings, raw and processed."""
    root = tmp_path_factory.mktemp("layout19")
    synth.generate_cohort(
        root / "raw", layout="in-motion-19", infants=6, minutes=0.2, cp_fraction=0.5, seed=2, workers=1
    )
    prepare_dataset(
        root / "raw",
        root / "processed",
        layout="in-motion-19",
        config=PrepareConfig(window=WINDOW),
        seed=2,
        workers=1,
    )
    return root


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_inputs_are_one_line_errors_and_leave_results_intact(run_dir, other_layout, tmp_path, capsys):
    out = tmp_path / "predictions"
    raw = cohort().parent / "raw"
    good = sorted(raw.glob("orgcoords_*.csv"))[0]
    assert run_main(predict.main, ["--checkpoint", run_dir, good, "--out", out], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    # a checkpoint for another layout than the data
    code, _, err = run_main(
        evaluate.main,
        ["--checkpoint", run_dir, "--data", other_layout / "processed", "--out", tmp_path / "r"],
        capsys,
    )
    assert_one_line_error(code, err, "layout 'in-motion-29'", "in-motion-19")
    # recordings with missing joints (a 19-joint file for a 29-joint model)
    other = shutil.copy(
        sorted((other_layout / "raw").glob("orgcoords_*.csv"))[0], tmp_path / "orgcoords_v19.csv"
    )
    code, _, err = run_main(predict.main, ["--checkpoint", run_dir, good, other, "--out", out], capsys)
    assert_one_line_error(code, err, str(other), "no x/y columns")
    # a recording shorter than a window
    short = tmp_path / "orgcoords_short.csv"
    lines = good.read_text().splitlines()
    short.write_text("\n".join(lines[: WINDOW // 2]) + "\n")
    code, _, err = run_main(predict.main, ["--checkpoint", run_dir, short, "--out", out], capsys)
    assert_one_line_error(code, err, str(short), "shorter than a window")
    # an empty folder, a missing file
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(predict.main, ["--checkpoint", run_dir, tmp_path / "empty", "--out", out], capsys)
    assert_one_line_error(code, err, "no recordings")
    code, _, err = run_main(
        predict.main, ["--checkpoint", run_dir, tmp_path / "nope.csv", "--out", out], capsys
    )
    assert_one_line_error(code, err, "no such file")
    # a damaged checkpoint, a checkpoint of another feature set, a damaged export file
    damaged = shutil.copytree(run_dir / "seed_0", tmp_path / "damaged")
    shutil.rmtree(damaged / "state")
    code, _, err = run_main(predict.main, ["--checkpoint", damaged, good, "--out", out], capsys)
    assert_one_line_error(code, err, "damaged checkpoint")
    features = shutil.copytree(run_dir / "seed_0", tmp_path / "features")
    meta = json.loads((features / "meta.json").read_text())
    meta["features"]["streams"] = "JVBA"
    (features / "meta.json").write_text(json.dumps(meta))
    code, _, err = run_main(predict.main, ["--checkpoint", features, good, "--out", out], capsys)
    assert_one_line_error(code, err, "do not fit")
    (tmp_path / "bad.jaxcp").write_bytes(b"PK\x03\x04 not really")
    code, _, err = run_main(predict.main, ["--model", tmp_path / "bad.jaxcp", good, "--out", out], capsys)
    assert_one_line_error(code, err, "not a jaxcp export file")
    # bad arguments
    code, _, err = run_main(
        evaluate.main, ["--checkpoint", run_dir, "--data", cohort(), "--threshold", "2"], capsys
    )
    assert_one_line_error(code, err, "--threshold")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # export of a damaged checkpoint: one line, exit 2, no file
    code, _, err = run_main(export.main, ["--checkpoint", damaged, "--out", tmp_path / "d.jaxcp"], capsys)
    assert_one_line_error(code, err, "damaged checkpoint")
    assert not (tmp_path / "d.jaxcp").exists()
    # train with a bad arch file: one line naming the file, exit 2, nothing written
    bad_arch = tmp_path / "bad_arch.yaml"
    bad_arch.write_text(arch_file_text(TINY_ARCH, TINY_HPARAMS).replace("activation: relu", "activation: tanh"))
    code, _, err = run_main(train.main, train_argv(bad_arch, tmp_path / "never"), capsys)
    assert_one_line_error(code, err, str(bad_arch), "tanh")
    assert not (tmp_path / "never").exists()


def test_expand_checkpoints_lists_seeds_in_order(run_dir):
    assert inference.expand_checkpoints([run_dir]) == [run_dir / "seed_0", run_dir / "seed_1"]
    assert inference.expand_checkpoints([run_dir / "seed_1"]) == [run_dir / "seed_1"]


def test_progress_lines_without_a_terminal(capsys):
    import io

    stream = io.StringIO()
    progress = train.EpochProgress(10, quiet=False, stream=stream)
    report = students.EpochReport(
        5,
        np.array([0.5, 0.7]),
        True,
        np.array([0.75, np.nan]),
        np.array([True, False]),
        [{"best_auc": 0.75}, {"best_auc": None}],
    )
    progress.update(report)
    progress.update(
        students.EpochReport(
            6,
            np.array([0.4, 0.6]),
            False,
            np.full(2, np.nan),
            np.zeros(2, bool),
            [{"best_auc": 0.75}, {"best_auc": None}],
        )
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "epoch  5/10" in lines[0] and "loss 0.6000" in lines[0]
    assert "val AUC 0.750/-" in lines[0] and "\r" not in stream.getvalue()
