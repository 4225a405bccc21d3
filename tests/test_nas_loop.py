"""The search loop with a stand-in for training: both strategies resume to exactly the uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxcp.core.config import CONFIG_DIR
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.nas.config import load_search_config
from jaxcp.nas.loop import Search
from jaxcp.nas.space import load_space
from jaxcp.training.students import StudentResult

SPACE = load_space(CONFIG_DIR / "space" / "quick.yaml")


class Killed(Exception):
    """Stands for SIGKILL: the loop stops wherever it is."""


class FakeExperiment:
    """Rewards from the candidate alone (joint attention and swish are better), after `fail_after` calls a
    kill. Records what it was asked to train."""

    layout = IN_MOTION_29

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = [], fail_after

    def train(self, arch, hparams, seeds, *, long=False, checkpoint_dir=None, on_epoch=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise Killed
        self.calls.append((arch.attention, arch.activation, tuple(seeds), long))
        results = []
        for hp, seed in zip(hparams, seeds, strict=True):
            noise = np.random.default_rng(seed).uniform(0, 0.05)
            reward = 0.5 + 0.3 * (arch.attention == "ja") + 0.1 * (arch.activation == "swish") + noise
            reward += 0.02 * (hp.optimizer == "adam")
            results.append(StudentResult(reward=float(reward), status="ok", best_epoch=3, metrics={"auc": reward},
                                         history=[], seconds_compile=0.0, seconds_train=0.0, seconds_eval=0.0))
        return results


class Log:
    def __init__(self):
        self.lines, self.students = [], []

    def line(self, text):
        self.lines.append(text)

    warn = line

    def student(self, record, index, count, best):
        self.students.append(record.id)


def config(strategy: str):
    return load_search_config(str(CONFIG_DIR / "search" / "test.yaml"), [
        f"controller.strategy={strategy}", "iterations=2", "first_students=6", "students=4", "student.seeds=2",
        "student.argmax_epochs=5", "replay.threshold=0.7"])  # fmt: skip


def outputs(run_dir):
    return ((run_dir / "students.jsonl").read_text(), json.loads((run_dir / "summary.json").read_text()),
            (run_dir / "controller_probabilities.json").read_text())  # fmt: skip


@pytest.mark.parametrize("strategy", ["reinforce", "random"])
def test_both_strategies_resume_to_the_uninterrupted_result(strategy, tmp_path):
    cfg = config(strategy)
    straight = FakeExperiment()
    Search(cfg, tmp_path / "straight", straight, SPACE, Log()).run()
    killed = FakeExperiment(fail_after=5)
    with pytest.raises(Killed):
        Search(cfg, tmp_path / "killed", killed, SPACE, Log()).run()
    resumed, log = FakeExperiment(), Log()
    Search(cfg, tmp_path / "killed", resumed, SPACE, log).run()
    assert outputs(tmp_path / "killed") == outputs(tmp_path / "straight")
    assert killed.calls + resumed.calls == straight.calls  # nothing trained twice, nothing skipped
    assert any("resuming from checkpoint" in line for line in log.lines)
    students = [json.loads(line) for line in outputs(tmp_path / "straight")[0].splitlines()]
    assert len(students) == cfg.total_students and {s["iteration"] for s in students} == {0, 1}
    history = json.loads(outputs(tmp_path / "straight")[2])
    assert [h["iteration"] for h in history] == [0, 1]
    for h, it in zip(history, range(2), strict=True):
        mine = [s["reward"] for s in students if s["iteration"] == it]
        assert h["mean_reward"] == pytest.approx(np.mean(mine))
    uniform = sum(np.log(d.num_choices) for d in SPACE.decisions)
    if strategy == "random":
        assert all(h["entropy"] == pytest.approx(uniform, abs=1e-5) for h in history)  # the policy never moves
        best = max(students, key=lambda s: s["reward"])
        assert outputs(tmp_path / "straight")[1]["argmax"][-1]["actions"] == best["actions"]
    else:
        assert history[-1]["entropy"] < uniform - 0.01  # REINFORCE moved the policy
    assert (tmp_path / "straight" / "rewards.png").stat().st_size > 1000


def test_random_search_samples_the_space_uniformly():
    from jaxcp.nas import state as steps

    cfg = config("random")
    state = steps.start_iteration(steps.init_state(SPACE, cfg), SPACE, cfg)
    expected = np.asarray(SPACE.sample_many(steps.iteration_key(cfg, 0), cfg.first_students))
    np.testing.assert_array_equal(np.array([c.actions for c in state.pending]), expected)
