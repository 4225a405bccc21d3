"""The argmax candidate trained in the background while the next iteration's students train: the same
records, controller and best.yaml as the sequential order, and a run stopped while it trains resumes to the
same end (its checkpoint holds it as owed, not done). Training is a stand-in (tests/test_nas_loop.py)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import jax
import pytest
from test_nas_loop import SPACE, FakeExperiment, Killed, Log, outputs

from jaxcp.core.config import CONFIG_DIR
from jaxcp.nas import loop
from jaxcp.nas.checkpoint import SearchCheckpoints
from jaxcp.nas.config import load_search_config
from jaxcp.nas.loop import Search
from jaxcp.nas.state import init_state

ARGMAX_SECONDS = 0.3  # the stand-in's long training
STUDENT_SECONDS = 0.05  # per group


def config(strategy: str = "reinforce"):
    """Two iterations of few students (few checkpoints), so that argmax 0 overlaps iteration 1."""
    return load_search_config(str(CONFIG_DIR / "search" / "test.yaml"), [
        f"controller.strategy={strategy}", "iterations=2", "first_students=3", "students=2",
        "student.argmax_epochs=5"])  # fmt: skip


class TimedExperiment(FakeExperiment):
    """FakeExperiment that takes time and records when each training ran. Its first argmax candidate trains
    until a student training starts beside it (at most 10 s), then ARGMAX_SECONDS more; with `kill` that
    student training raises Killed instead."""

    def __init__(self, kill: bool = False):
        super().__init__()
        self.kill, self.spans, self.lock = kill, [], threading.Lock()
        self.beside = threading.Event()  # a student training started while an argmax candidate trained

    def train(self, arch, hparams, seeds, *, long=False, **kwargs):
        with self.lock:
            first_argmax = long and not any(kind == "argmax" for kind, *_ in self.spans)
            if not long and any(kind == "argmax" and end is None for kind, _, end in self.spans):
                self.beside.set()
                if self.kill:
                    raise Killed
            self.spans.append(["argmax" if long else "students", time.perf_counter(), None])
            span = self.spans[-1]
        if first_argmax:
            self.beside.wait(10)
        time.sleep(ARGMAX_SECONDS if long else STUDENT_SECONDS)
        results = super().train(arch, hparams, seeds, long=long, **kwargs)
        span[2] = time.perf_counter()
        return results


def comparable(run_dir):
    """students.jsonl, summary (without the overlap timings), controller probabilities, best.yaml."""
    students, summary, probabilities = outputs(run_dir)
    for a in summary["argmax"]:
        a.pop("seconds_overlapped")
    summary.pop("argmax_seconds_overlapped")
    return students, summary, probabilities, (run_dir / "best.yaml").read_text()


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sequential")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "plot_search", lambda *args: None)  # slow, and tested in tests/test_nas_loop.py
        Search(config("reinforce"), run_dir, FakeExperiment(), SPACE, Log(), overlap_argmax=False).run()
    return run_dir


def test_overlapped_argmax_gives_the_sequential_results(sequential, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "plot_search", lambda *args: None)
    experiment, log = TimedExperiment(), Log()
    summary = Search(config("reinforce"), tmp_path, experiment, SPACE, log).run()
    assert comparable(tmp_path) == comparable(sequential)
    # iteration 0's argmax candidate trained while iteration 1's students did (their spans intersect)
    assert experiment.beside.is_set()
    (_, a_start, a_end), _ = [s for s in experiment.spans if s[0] == "argmax"]
    during = [s for s in experiment.spans if s[0] == "students" and a_start < s[1] < a_end]
    assert during, experiment.spans
    first = summary["argmax"][0]["seconds_overlapped"]
    assert STUDENT_SECONDS <= first <= a_end - a_start + 0.5  # at most its training (and writing arch.yaml)
    assert summary["argmax_seconds_overlapped"] == pytest.approx(sum(a["seconds_overlapped"]
                                                                     for a in summary["argmax"]), abs=1e-3)
    assert any("(in the background)" in line for line in log.lines)


def test_stopped_while_the_argmax_trains_resumes_to_the_same_end(sequential, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "plot_search", lambda *args: None)
    cfg = config("reinforce")
    with pytest.raises(Killed):
        Search(cfg, tmp_path, TimedExperiment(kill=True), SPACE, Log()).run()
    checkpoints = SearchCheckpoints(tmp_path / "checkpoints")
    stopped = checkpoints.restore(init_state(SPACE, cfg), SPACE, Log())
    checkpoints.close()
    assert (stopped.iteration, stopped.argmax) == (1, ())  # stopped in iteration 1, argmax 0 unfinished ...
    assert [it for it, _ in stopped.argmax_due] == [0]  # ... and owed, not done
    resumed = FakeExperiment()
    Search(cfg, tmp_path, resumed, SPACE, Log()).run()
    assert comparable(tmp_path) == comparable(sequential)
    assert [long for *_, long in resumed.calls].count(True) == 2  # argmax 0 again, and argmax 1


def test_students_leave_the_default_device_to_a_training_argmax(tmp_path):
    """With more devices than groups, the groups avoid the device the argmax candidate trains on."""
    default = jax.local_devices()[0]
    others = ("device 1", "device 2")  # stand-ins: only compared
    search = Search(config("reinforce"), tmp_path, FakeExperiment(), SPACE, Log(), devices=(default, *others))
    training, done = concurrent.futures.Future(), concurrent.futures.Future()
    done.set_result(None)
    assert search._student_devices(1) == (default, *others)  # nothing in the background
    search._argmax_jobs = {0: training}
    assert search._student_devices(1) == others and search._student_devices(2) == others
    assert search._student_devices(3) == (default, *others)  # every device needed: the argmax shares one
    search._argmax_jobs = {0: done}
    assert search._student_devices(1) == (default, *others)
    search.checkpoints.close()
