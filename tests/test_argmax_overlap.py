"""The argmax candidate trained in the background while the next iteration's students train: the same
records, controller and best.yaml as the sequential order, and a run stopped while it trains resumes to the
same end (its checkpoint holds it as owed, not done). Training is a stand-in (tests/test_nas_loop.py)."""

from __future__ import annotations

import threading
import time

import pytest
from test_nas_loop import SPACE, FakeExperiment, Killed, Log, config, outputs

from jaxcp.nas import loop
from jaxcp.nas.checkpoint import SearchCheckpoints
from jaxcp.nas.loop import Search
from jaxcp.nas.state import init_state

ARGMAX_SECONDS = 0.4  # the stand-in's long training
STUDENT_SECONDS = 0.05  # per group


class TimedExperiment(FakeExperiment):
    """FakeExperiment that takes time, records when each training ran, and with `kill` raises Killed in the
    first student training that starts while an argmax candidate trains."""

    def __init__(self, kill: bool = False):
        super().__init__()
        self.kill, self.spans, self.lock = kill, [], threading.Lock()

    def train(self, arch, hparams, seeds, *, long=False, **kwargs):
        start = time.perf_counter()
        if self.kill and not long and any(kind == "argmax" and end is None for kind, _, end in self.spans):
            raise Killed
        with self.lock:
            self.spans.append(["argmax" if long else "students", start, None])
            span = self.spans[-1]
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
    (_, a_start, a_end), _ = [s for s in experiment.spans if s[0] == "argmax"]
    during = [s for s in experiment.spans if s[0] == "students" and a_start < s[1] < a_end]
    assert during, experiment.spans
    first = summary["argmax"][0]["seconds_overlapped"]
    assert STUDENT_SECONDS <= first <= ARGMAX_SECONDS + 0.2
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
