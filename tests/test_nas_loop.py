"""The search loop with a stand-in for training: both strategies resume to exactly the uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from jaxcp.core.config import CONFIG_DIR
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.nas import loop
from jaxcp.nas.config import load_search_config
from jaxcp.nas.heldout import count_ties, describe_best, describe_held_out, held_out_result
from jaxcp.nas.loop import Search, student_seed
from jaxcp.nas.space import load_space
from jaxcp.training.students import StudentResult

SPACE = load_space(CONFIG_DIR / "space" / "quick.yaml")


class Killed(Exception):
    """Stands for SIGKILL: the loop stops wherever it is."""


class FakeExperiment:
    """Rewards from the candidate alone (joint attention and swish are better), after `fail_after` calls a
    kill. Records what it was asked to train."""

    layout = IN_MOTION_29

    def __init__(self, fail_after: int | None = None, cap: float | None = None):
        self.calls, self.fail_after, self.cap = [], fail_after, cap
        self.checkpoints = []  # where it was asked to save a model

    def train(self, arch, hparams, seeds, *, long=False, checkpoint_dir=None, on_epoch=None, placement=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise Killed
        self.calls.append((arch.attention, arch.activation, tuple(seeds), long))
        self.checkpoints.append(checkpoint_dir)
        results = []
        for hp, seed in zip(hparams, seeds, strict=True):
            noise = np.random.default_rng(seed).uniform(0, 0.05)
            reward = 0.5 + 0.3 * (arch.attention == "ja") + 0.1 * (arch.activation == "swish") + noise
            reward += 0.02 * (hp.optimizer == "adam")
            reward = reward if self.cap is None else min(reward, self.cap)  # a cap makes ties
            results.append(StudentResult(reward=float(reward), status="ok", best_epoch=3, metrics={"auc": reward},
                                         history=[], seconds_compile=0.0, seconds_train=0.0, seconds_eval=0.0))
        return results

    def train_groups(self, groups, devices=None, *, on_done=None):
        """The groups one after another (as one device would)."""
        out = []
        for index, group in enumerate(groups):
            out.append(self.train(group.arch, group.hparams, group.seeds))
            if on_done is not None:
                on_done(index, out[-1])
        return out


class RecordingExperiment(FakeExperiment):
    """FakeExperiment that also records the reward it gave each seed."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.by_seed = {}

    def train(self, arch, hparams, seeds, **kwargs):
        results = super().train(arch, hparams, seeds, **kwargs)
        self.by_seed.update({seed: r.reward for seed, r in zip(seeds, results, strict=True)})
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


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """(run folder, experiment) of an uninterrupted search per strategy, run once for the tests that read it."""
    runs = {}

    def run(strategy: str):
        if strategy not in runs:
            experiment, run_dir = RecordingExperiment(), tmp_path_factory.mktemp(f"straight_{strategy}")
            Search(config(strategy), run_dir, experiment, SPACE, Log(), overlap_argmax=False).run()
            runs[strategy] = run_dir, experiment
        return runs[strategy]

    return run


@pytest.mark.parametrize("strategy", ["reinforce", "random"])
def test_both_strategies_resume_to_the_uninterrupted_result(strategy, tmp_path, straight_run):
    cfg = config(strategy)
    straight_dir, straight = straight_run(strategy)
    killed = FakeExperiment(fail_after=5)
    with pytest.raises(Killed):
        Search(cfg, tmp_path / "killed", killed, SPACE, Log(), overlap_argmax=False).run()
    resumed, log = FakeExperiment(), Log()  # in order (the overlapped order: tests/test_argmax_overlap.py)
    Search(cfg, tmp_path / "killed", resumed, SPACE, log, overlap_argmax=False).run()
    assert outputs(tmp_path / "killed") == outputs(straight_dir)
    assert killed.calls + resumed.calls == straight.calls  # nothing trained twice, nothing skipped
    assert any("resuming from checkpoint" in line for line in log.lines)
    students = [json.loads(line) for line in outputs(straight_dir)[0].splitlines()]
    assert len(students) == cfg.total_students and {s["iteration"] for s in students} == {0, 1}
    history = json.loads(outputs(straight_dir)[2])
    assert [h["iteration"] for h in history] == [0, 1]
    for h, it in zip(history, range(2), strict=True):
        mine = [s["reward"] for s in students if s["iteration"] == it]
        assert h["mean_reward"] == pytest.approx(np.mean(mine))
    uniform = sum(np.log(d.num_choices) for d in SPACE.decisions)
    if strategy == "random":
        assert all(h["entropy"] == pytest.approx(uniform, abs=1e-5) for h in history)  # the policy never moves
        best = max(students, key=lambda s: s["reward"])
        assert outputs(straight_dir)[1]["argmax"][-1]["actions"] == best["actions"]
    else:
        assert history[-1]["entropy"] < uniform - 0.01  # REINFORCE moved the policy
    assert (straight_dir / "rewards.png").stat().st_size > 1000


def test_random_search_samples_the_space_uniformly():
    from jaxcp.nas import state as steps

    cfg = config("random")
    state = steps.start_iteration(steps.init_state(SPACE, cfg), SPACE, cfg)
    expected = np.asarray(SPACE.sample_many(steps.iteration_key(cfg, 0), cfg.first_students))
    np.testing.assert_array_equal(np.array([c.actions for c in state.pending]), expected)


class FakeTestSplit:
    """A held-out split of 10 infants (3 CP) with fixed risks; records which models it scored."""

    split = "test"
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    risk = np.array([0.9, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05, 0.45])

    def __init__(self, data_dir):
        self.data_dir, self.scored = data_dir, []

    def __call__(self, checkpoint):
        self.scored.append(checkpoint)
        return self.labels, self.risk


def exact_interval(k, n):
    ci = stats.binomtest(k, n).proportion_ci(method="exact")
    return [ci.low, ci.high]


@pytest.mark.parametrize("strategy, argmax_epochs", [("reinforce", 5), ("random", 0)])
def test_held_out_result_of_the_best_candidate(strategy, argmax_epochs, tmp_path, monkeypatch):
    """The best candidate's model is scored on the held-out split once; the summary holds the numbers, the
    ties and the candidates counted by hand; a finished search run again scores nothing again."""
    monkeypatch.setattr(loop, "plot_search", lambda *args: None)  # slow, and tested above
    cfg = load_search_config(str(CONFIG_DIR / "search" / "test.yaml"), [
        f"controller.strategy={strategy}", "iterations=2", "first_students=6", "students=4",
        f"student.argmax_epochs={argmax_epochs}"])  # fmt: skip
    run_dir, test = tmp_path / "run", FakeTestSplit(tmp_path / "data")
    experiment, log = FakeExperiment(cap=0.8), Log()
    summary = Search(cfg, run_dir, experiment, SPACE, log, test).run()
    students = [json.loads(line) for line in (run_dir / "students.jsonl").read_text().splitlines()]
    rewards = [s["reward"] for s in students] + [a["reward"] for a in summary["argmax"]]
    best = max(rewards)
    assert summary["best"]["reward"] == best
    assert summary["best"]["candidates"] == len(students) + argmax_epochs // 5 * cfg.iterations
    assert summary["best"]["ties"] == sum(round(r, 3) == round(best, 3) for r in rewards) > 1
    # the model scored: the best argmax candidate's, or a best student trained again into best_model/
    assert ("checkpoint" in summary["best"]) == bool(argmax_epochs)  # both kinds of best candidate occur
    if argmax_epochs:
        assert test.scored == [run_dir / summary["best"]["checkpoint"]]
    else:
        assert test.scored == [run_dir / "best_model"] and experiment.checkpoints[-1] == run_dir / "best_model"
        assert experiment.calls[-1][2] == (student_seed(cfg.seed, summary["best"]["id"], 0),)
    held = summary["held_out"]
    # by hand: 3 CP x 7 non-CP pairs, the CP risks 0.9, 0.6, 0.3 beat 7, 6 and 4 of the non-CP risks
    assert held["auc"] == pytest.approx(17 / 21)
    assert (held["num_infants"], held["num_cp"], held["num_non_cp"], held["split"]) == (10, 3, 7, "test")
    # at 0.5: TP 2 (0.9, 0.6), FN 1, TN 6 (all but 0.7), FP 1
    assert (held["sensitivity"], held["specificity"], held["accuracy"]) == pytest.approx((2 / 3, 6 / 7, 8 / 10))
    assert held["sensitivity_ci"] == pytest.approx(exact_interval(2, 3))
    assert held["specificity_ci"] == pytest.approx(exact_interval(6, 7))
    assert held["accuracy_ci"] == pytest.approx(exact_interval(8, 10))
    low, high = held["auc_ci"]
    assert 0.3 < low < 17 / 21 < high <= 1.0
    assert "held-out split 'test' has 3 CP and 7 non-CP infants" in held["warning"]
    assert held["advice"] == (f"the cohort is small: estimate the architecture's performance with "
                              f"`jaxcp crossval --arch {run_dir / 'best.yaml'} --data {tmp_path / 'data'}`")
    assert json.loads((run_dir / "summary.json").read_text())["held_out"] == held
    printed = describe_held_out(held)
    assert printed[0].startswith("held-out result on split 'test' (10 infants: 3 CP, 7 non-CP;")
    assert "AUC 0.810 (95 % CI" in printed[0] and "sensitivity 0.667" in printed[0]
    assert printed[1].startswith("warning: ") and printed[2] == held["advice"]
    # a finished search, run again, neither trains nor scores again and reports the same
    again_experiment, again_test = FakeExperiment(cap=0.8), FakeTestSplit(tmp_path / "data")
    again = Search(cfg, run_dir, again_experiment, SPACE, Log(), again_test).run()
    assert again == summary and again_experiment.calls == [] and again_test.scored == []


def test_held_out_also_at_the_threshold_chosen_on_validation():
    """Youden's threshold comes from the validation infants' risks only, then applies to the held-out ones."""
    from jaxcp.nas.heldout import at_validation_threshold

    # validation: J = sens + spec - 1 is 0, 1/3, 2/3, 1/6, 1/2 at 0.05, 0.1, 0.25, 0.3, 0.35: 0.25 wins
    chosen = at_validation_threshold(FakeTestSplit.labels, FakeTestSplit.risk, np.array([1, 1, 0, 0, 0]),
                                     np.array([0.35, 0.25, 0.3, 0.1, 0.05]), "val")
    assert chosen["threshold"] == 0.25 and chosen["chosen_on"] == "val" and chosen["num_infants"] == 5
    # held out at 0.25: all 3 CP called (0.9, 0.6, 0.3); non-CP 0.7, 0.4, 0.45 called: spec 4/7, accuracy 7/10
    assert (chosen["sensitivity"], chosen["specificity"], chosen["accuracy"]) == pytest.approx((1, 4 / 7, 0.7))
    assert chosen["specificity_ci"] == pytest.approx(exact_interval(4, 7))
    held = held_out_result(FakeTestSplit.labels, FakeTestSplit.risk, "test", "m")
    held["at_validation_threshold"] = chosen
    assert describe_held_out(held)[1].startswith("  at the threshold chosen on split 'val' (5 infants, Youden's J): "
                                                 "0.250: sensitivity 1.000")
    assert at_validation_threshold(FakeTestSplit.labels, FakeTestSplit.risk, np.zeros(4), np.ones(4), "val") is None


def test_held_out_skipped_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "plot_search", lambda *args: None)
    cfg = load_search_config(str(CONFIG_DIR / "search" / "test.yaml"), ["iterations=1", "student.argmax_epochs=0"])
    summary = Search(cfg, tmp_path / "run", FakeExperiment(), SPACE, Log(), "the data have no 'test' split").run()
    assert summary["held_out"] == {"skipped": "the data have no 'test' split"}
    assert describe_held_out(summary["held_out"]) == ["held-out result: none (the data have no 'test' split)"]


def test_count_ties_at_three_decimals():
    # 0.8666 and 0.8674 round to 0.867 with the best 0.867; 0.8664 -> 0.866; NaN is not validated
    assert count_ties([0.8666, 0.8674, 0.867, 0.8664, 0.5, float("nan")]) == (3, 5)
    assert count_ties([1.0, 1.0, 0.9996, 0.9994]) == (3, 4)
    assert count_ties([]) == (0, 0)
    best = {"reward": 0.8666, "ties": 3, "candidates": 5}
    assert describe_best(best) == ("best validation AUC 0.867 (optimistic: the maximum over 5 validated candidates; "
                                   "3 tied at that value)")
    assert "no tie" in describe_best({"reward": 0.9, "ties": 1, "candidates": 5})


def test_a_students_reward_is_the_mean_over_its_seeds(straight_run):
    cfg = config("reinforce")  # student.seeds=2
    run_dir, experiment = straight_run("reinforce")
    students = [json.loads(line) for line in outputs(run_dir)[0].splitlines()]
    assert len(students) == cfg.total_students
    for s in students:
        seeds = [student_seed(cfg.seed, s["id"], k) for k in range(2)]
        rewards = [experiment.by_seed[seed] for seed in seeds]
        assert rewards[0] != rewards[1]  # the seeds' rewards differ (their noise), so the mean is visible
        assert s["reward"] == pytest.approx(np.mean(rewards), abs=1e-12)


def test_the_search_stops_when_an_argmax_candidate_reaches_target_auc(tmp_path):
    """Rewards are 0.5-0.97 (joint attention +0.3): with target_auc 0.8 the search stops at the first
    argmax candidate that reaches it, long before its 20 iterations."""
    cfg = load_search_config(str(CONFIG_DIR / "search" / "test.yaml"), [
        "iterations=20", "first_students=6", "students=4", "student.argmax_epochs=5", "target_auc=0.8"])  # fmt: skip
    Search(cfg, tmp_path / "run", FakeExperiment(), SPACE, Log()).run()
    summary = outputs(tmp_path / "run")[1]
    argmax = [a["reward"] for a in summary["argmax"]]
    assert argmax[-1] >= 0.8 and all(r < 0.8 for r in argmax[:-1])
    assert summary["iterations"] == len(argmax) < 20


def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, straight_run):
    """Kill a search, damage its latest checkpoint: the resumed search warns, continues from the one before
    (training again what came after it) and ends as the uninterrupted search does."""
    cfg = config("reinforce")
    with pytest.raises(Killed):
        Search(cfg, tmp_path / "killed", FakeExperiment(fail_after=5), SPACE, Log(), overlap_argmax=False).run()
    steps = sorted((p for p in (tmp_path / "killed" / "checkpoints").iterdir() if p.name.isdigit()),
                   key=lambda p: int(p.name))  # fmt: skip
    assert len(steps) >= 2
    for f in steps[-1].rglob("*"):
        if f.is_file():
            f.write_bytes(b"damaged")
    resumed, log = FakeExperiment(), Log()
    Search(cfg, tmp_path / "killed", resumed, SPACE, log, overlap_argmax=False).run()
    assert any(f"checkpoint step {steps[-1].name} " in line and "falling back to an older one" in line
               for line in log.lines)  # fmt: skip
    assert any(f"resuming from checkpoint step {steps[-2].name} " in line for line in log.lines)
    assert outputs(tmp_path / "killed") == outputs(straight_run("reinforce")[0])
