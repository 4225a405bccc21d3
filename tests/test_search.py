"""The search loop end to end on a tiny preset: outputs, grouping, and resuming after SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxcp import search
from jaxcp.clinical.evaluation import predict_split
from jaxcp.clinical.metrics import roc_auc
from jaxcp.clinical.predictor import load_checkpoint
from jaxcp.core.config import from_dict, resolve_config_path
from jaxcp.data.dataset import load_dataset
from jaxcp.model.arch import Arch
from jaxcp.nas.config import load_search_config
from jaxcp.nas.space import load_space, read_arch_spec
from jaxcp.nas.state import (
    SearchState,
    StudentRecord,
    candidate_groups,
    decode,
    group_candidates,
    group_size,
    padded_size,
)
from jaxcp.training.hparams import HParams

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = str(REPO / "configs" / "search" / "test.yaml")


def run_cli(args, cwd, **extra_env):
    """The search in a subprocess, with the test session's persistent compilation cache (tests/conftest.py)."""
    env = {k: v for k, v in os.environ.items() if k != "JAXCP_NO_CACHE"} | extra_env
    return subprocess.Popen([sys.executable, "-m", "jaxcp.search", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("search")


@pytest.fixture(scope="module")
def full_run(workdir):
    """An uninterrupted tiny search (it also generates the shared synthetic cohort)."""
    proc = run_cli(["--config", TEST_CONFIG, "--out", "full", "--quiet"], workdir)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return workdir / "full", out


def read_students(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "students.jsonl").read_text().splitlines()]


def test_group_students_by_arch_and_batch():
    space = load_space(resolve_config_path("autocp", "space"))
    base = (0,) * 25
    other_lr = (0,) * 20 + (1, 0, 0, 0, 0)  # a hyperparameter: same compiled program
    other_act = (0, 1) + (0,) * 23  # an architecture decision
    other_batch = (0,) * 24 + (1,)  # batch size 32 instead of 24
    candidates = [decode(space, i, a) for i, a in enumerate([base, other_act, other_lr, other_batch, base])]
    groups = group_candidates(tuple(candidates))
    assert [[c.id for c in g] for g in groups] == [[0, 2, 4], [1], [3]]  # three of one arch: one group (of 4)
    assert [group_size(n) for n in (1, 2, 3, 4, 5, 8, 9, 13, 40)] == [1, 2, 4, 4, 8, 8, 8, 8, 8]
    many = tuple(decode(space, i, base) for i in range(13))
    assert [len(g) for g in group_candidates(many)] == [8, 5]  # both compiled (padded) for 8 students
    state = SearchState(controller=None, replay=None, pending=many)
    assert [padded_size(state, g) for g in candidate_groups(state)] == [8, 8]
    # a resumed iteration groups as the uninterrupted one: finished students leave their group, not the grouping
    done = tuple(StudentRecord(id=i, iteration=0, actions=c.actions, arch=c.arch, hparams=c.hparams, reward=0.5,
                               rewards=(0.5,), status="ok", best_epoch=1, metrics={}) for i, c in
                 enumerate(many[:9]))  # fmt: skip
    resumed = SearchState(controller=None, replay=None, pending=many, students=done)
    assert [[c.id for c in g] for g in candidate_groups(resumed)] == [[9, 10, 11, 12]]
    assert padded_size(resumed, candidate_groups(resumed)[0]) == 8


def test_tiny_search_writes_everything(full_run, workdir):
    run_dir, out = full_run
    config = load_search_config(TEST_CONFIG)
    students = read_students(run_dir)
    later = [i for i in range(1, config.iterations) for _ in range(config.students)]
    assert [s["id"] for s in students] == list(range(config.first_students + len(later)))
    assert [s["iteration"] for s in students] == [0] * config.first_students + later
    for s in students:
        assert 0.0 <= s["reward"] <= 1.0 and s["status"] in ("ok", "early_stopped", "failed")
        assert s["params"] > 0 and s["macs"] > 0 and s["seconds_train"] > 0
    probabilities = json.loads((run_dir / "controller_probabilities.json").read_text())
    assert len(probabilities) == config.iterations
    for entry in probabilities:
        for p in entry["probabilities"]:
            assert abs(sum(p) - 1) < 1e-5
    best = read_arch_spec(run_dir / "best.yaml", str(resolve_config_path(config.space, "space")))
    assert (best.features, best.window, best.hop) == (config.student.features, 30, 15)  # found with these
    summary = json.loads((run_dir / "summary.json").read_text())
    # best.yaml is the best validated candidate (README: the maximum validation AUC over the students and
    # argmax candidates that did not fail), architecture and hyperparameters of one such candidate
    validated = [r for r in (*summary["argmax"], *students) if r["status"] != "failed"]
    top = max(r["reward"] for r in validated)
    assert summary["best"]["reward"] == top
    assert any(from_dict(Arch, r["arch"], "arch") == best.arch and from_dict(HParams, r["hparams"], "hparams")
               == best.hparams for r in validated if r["reward"] == top)  # fmt: skip
    assert from_dict(Arch, summary["best"]["arch"], "arch") == best.arch
    assert summary["best"]["candidates"] == len(students) + len(summary["argmax"])
    rewards = [s["reward"] for s in students] + [a["reward"] for a in summary["argmax"]]
    assert summary["best"]["ties"] == sum(round(r, 3) == round(max(rewards), 3) for r in rewards)
    # the held-out result: the best candidate's model on the test split, numbers as `evaluate` gives them
    held, data_dir = summary["held_out"], Path(re.search(r"; data (\S+) \(layout", out).group(1))
    test_set = load_dataset(workdir / data_dir, "test")
    assert (held["split"], held["num_infants"], held["num_cp"]) == ("test", test_set.num_infants,
                                                                   int(test_set.labels.sum()))  # fmt: skip
    model = run_dir / held["model"]
    assert model == (run_dir / summary["best"]["checkpoint"] if "checkpoint" in summary["best"]
                     else run_dir / "best_model")  # fmt: skip
    _, output = predict_split([load_checkpoint(model)], workdir / data_dir, "test")
    assert held["auc"] == pytest.approx(roc_auc(test_set.labels, output.risk))
    assert "advice" in held and "jaxcp crossval --arch" in held["advice"]  # 24 infants: a small cohort
    assert len(summary["argmax"]) == config.iterations
    for a in summary["argmax"]:
        meta = json.loads((run_dir / a["checkpoint"] / "meta.json").read_text())
        assert meta["features"]["streams"] == "VA"  # the argmax candidates train on the configured streams
    assert (run_dir / "rewards.png").stat().st_size > 1000
    assert (run_dir / "controller_probabilities.png").stat().st_size > 1000
    assert re.search(r"best validation AUC \d\.\d{3} \(optimistic: the maximum over \d+ validated candidates", out)
    assert "(layout in-motion-29)" in out  # the synthetic cohort's default layout
    assert "\nheld-out result on split 'test' (" in out and held["advice"] in out
    assert re.search(r"^warning: the validation split has \d+ CP and \d+ non-CP infants", out, flags=re.M)


def test_killed_search_resumes_to_the_same_state(full_run, workdir):
    reference = full_run[0]
    # no held-out step here (the full run checks it): the comparison is of students and controller
    proc = run_cli(["--config", TEST_CONFIG, "--out", "killed", "--quiet", "--set", "test_split="], workdir)
    students = workdir / "killed" / "students.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if students.exists() and len(students.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(read_students(workdir / "killed"))
    assert 2 <= done_before < len(read_students(reference))

    resumed = run_cli(["--resume", "killed", "--quiet"], workdir)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming from checkpoint" in out
    # No finished student was trained again: only the remaining ones were logged by the resumed process.
    trained = re.findall(r"^iteration \d+ student \d+/\d+", out, flags=re.M)
    assert len(trained) == len(read_students(reference)) - done_before
    got, want = read_students(workdir / "killed"), read_students(reference)
    assert [(s["id"], s["actions"], s["reward"]) for s in got] == [(s["id"], s["actions"], s["reward"]) for s in want]
    probs = json.loads((workdir / "killed" / "controller_probabilities.json").read_text())
    assert probs == json.loads((reference / "controller_probabilities.json").read_text())


@pytest.mark.slow  # compiles the search's programs again (XLA_FLAGS are part of the cache key)
def test_four_devices_give_the_same_search(full_run, workdir):
    """The tiny search with 4 forced CPU devices: the same students in the same order, the same rewards,
    controller and best candidate as the one-device run (the held-out step is skipped: it follows from
    best.yaml). Not compared: the float metrics behind the rewards (validation loss, window AUC), which
    XLA:CPU computes with rounding differences (~1e-9 relative) in a process with another device count."""
    reference = full_run[0]
    proc = run_cli(["--config", TEST_CONFIG, "--out", "four", "--quiet", "--set", "test_split="], workdir,
                   XLA_FLAGS="--xla_force_host_platform_device_count=4")  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    got, want = read_students(workdir / "four"), read_students(reference)
    keys = ("id", "iteration", "actions", "group", "reward", "rewards", "best_epoch")
    assert [[s[k] for k in keys] for s in got] == [[s[k] for k in keys] for s in want]
    assert [s["id"] for s in got] == list(range(len(want)))  # students.jsonl in id order
    for name in ("controller_probabilities.json", "best.yaml"):
        assert (workdir / "four" / name).read_text() == (reference / name).read_text()
    summary, one = (json.loads((d / "summary.json").read_text()) for d in (workdir / "four", reference))
    assert (summary["devices"], one["devices"]) == (4, 1)
    assert [a["reward"] for a in summary["argmax"]] == [a["reward"] for a in one["argmax"]]
    compiled = summary["compile"]
    iterations = {s["iteration"] for s in got}  # the tiny space has one architecture: one group per iteration
    assert compiled["groups"] == len({(s["iteration"], s["group"]) for s in got}) == len(iterations) >= 2
    assert compiled["seconds_compile_hidden"] + compiled["seconds_compile_waited"] == pytest.approx(
        compiled["seconds_compile"], abs=0.01)  # fmt: skip
    for s in got:
        assert s["seconds_compile_hidden"] >= 0 and s["seconds_compile_waited"] >= 0


def test_bad_config_fails_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        search.main(["--config", TEST_CONFIG, "--out", str(tmp_path / "run"), "--set", "student.epochs=zero"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "student: epochs" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        search.main(["--config", TEST_CONFIG, "--set", "bogus=1", "--out", str(tmp_path / "run2")])
    assert "unknown key 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        search.main(["--config", TEST_CONFIG, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r3")])
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_student_features_setting_reaches_the_training_configs(tmp_path, capsys):
    default = load_search_config(TEST_CONFIG, ["student.features.streams=JVBA"])
    assert default.student.student_config().features.streams == "JVBA"
    config = load_search_config(TEST_CONFIG, ["student.features.streams=VA", "student.features.use_filter=false"])
    student, long = config.student.student_config(), config.student.argmax_config()
    assert (student.features.streams, student.features.use_filter) == ("VA", False)
    assert long.features == student.features
    assert (long.epochs, long.eval_last, long.early_stop) == (config.student.argmax_epochs, 0, False)
    quick = load_search_config("quick")
    assert quick.student.student_config().features.streams == quick.student.features.streams
    load_space(resolve_config_path(quick.space, "space"))  # the preset's space is valid
    with pytest.raises(SystemExit) as exit_info:
        search.main(["--config", TEST_CONFIG, "--out", str(tmp_path / "run"), "--set", "student.features.streams=XY"])
    assert exit_info.value.code == 2 and "features.streams" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_search_takes_the_layout_of_the_data(tmp_path, capsys):
    """--data DIR: the layout of its manifest, unless the config names one (then a mismatch is an error)."""
    from data_fixtures import TINY, make_raw_dir

    from jaxcp.data.prepare import prepare_dataset

    labels = {f"{k:02d}": int(k < 6) for k in range(16)}
    data_dir = tmp_path / "processed"
    prepare_dataset(make_raw_dir(tmp_path / "raw", TINY, labels), data_dir, layout=TINY, warn=lambda _: None)
    config = load_search_config(TEST_CONFIG, [f"data={data_dir}"])
    assert config.layout is None and load_search_config("quick").layout is None
    found, layout = search.search_data(config)
    assert found == data_dir and (layout.name, layout.joints, layout.edges) == (TINY.name, TINY.joints, TINY.edges)
    explicit = load_search_config(TEST_CONFIG, [f"data={data_dir}", "layout=in-motion-29"])
    assert search.search_data(explicit)[1].name == "in-motion-29"
    with pytest.raises(SystemExit) as exit_info:
        search.main(["--config", TEST_CONFIG, "--data", str(data_dir), "--set", "layout=in-motion-29",
                     "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "data use layout 'tiny', the config asks for 'in-motion-29'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
