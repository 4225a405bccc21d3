"""The search state's pure steps, without files or training; and its checkpoint format."""

from __future__ import annotations

import dataclasses

import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization

from jaxcp.core.config import CONFIG_DIR
from jaxcp.core.errors import InputError
from jaxcp.nas import state as steps
from jaxcp.nas.checkpoint import SearchCheckpoints
from jaxcp.nas.config import load_search_config
from jaxcp.nas.space import load_space

SPACE = load_space(CONFIG_DIR / "space" / "quick.yaml")  # activation, attention, optimizer, weight decay
CONFIG = load_search_config(str(CONFIG_DIR / "search" / "test.yaml"),
                            ["replay.threshold=0.5", "first_students=8", "students=4"])


class Log:
    def __init__(self):
        self.lines = []

    def line(self, text):
        self.lines.append(text)

    warn = line


def fake_records(state: steps.SearchState, reward_of) -> list[steps.StudentRecord]:
    """Records for every unfinished candidate, with rewards from `reward_of(candidate)`."""
    return [steps.StudentRecord(id=c.id, iteration=state.iteration, actions=c.actions, arch=c.arch,
                                hparams=c.hparams, reward=reward_of(c), rewards=(reward_of(c),), status="ok",
                                best_epoch=1, metrics={"auc": reward_of(c)})
            for c in steps.unfinished(state)]  # fmt: skip


def one_iteration(state, reward_of):
    state = steps.start_iteration(state, SPACE, CONFIG)
    for group in steps.candidate_groups(state):
        done = {c.id for c in group}
        state = steps.add_students(state, [r for r in fake_records(state, reward_of) if r.id in done])
    state, info = steps.update_controller(state, CONFIG)
    return state, info


def test_an_iteration_samples_records_and_updates():
    state = steps.init_state(SPACE, CONFIG)
    assert (state.iteration, state.phase, state.pending, state.students) == (0, "students", None, ())
    state = steps.start_iteration(state, SPACE, CONFIG)
    assert [c.id for c in state.pending] == list(range(CONFIG.first_students))
    assert steps.start_iteration(state, SPACE, CONFIG) is state  # already sampled: nothing new is drawn
    for c in state.pending:  # decoded once, consistently with the space
        assert SPACE.decode(c.actions) == (c.arch, c.hparams)
    before = np.asarray(state.controller.logits).copy()
    state, info = one_iteration(steps.init_state(SPACE, CONFIG), lambda c: 0.9 if c.actions[1] == 0 else 0.1)
    assert state.phase == "argmax" and info["rollouts"] == CONFIG.first_students
    assert not np.array_equal(np.asarray(state.controller.logits), before)
    stored = int(state.replay.count)
    assert stored == sum(s.reward > 0.5 for s in state.students)  # threshold 0.5: the 0.9 students enter
    assert len(state.probabilities) == 1 and state.probabilities[0]["iteration"] == 0
    state = steps.next_iteration(state)
    assert (state.iteration, state.phase, state.pending) == (1, "students", None)
    state = steps.start_iteration(state, SPACE, CONFIG)
    assert state.pending[0].id == CONFIG.first_students  # ids go on across iterations


def test_sampling_depends_on_seed_and_iteration_only():
    a = steps.start_iteration(steps.init_state(SPACE, CONFIG), SPACE, CONFIG)
    b = steps.start_iteration(steps.init_state(SPACE, CONFIG), SPACE, CONFIG)
    assert a.pending == b.pending
    other = dataclasses.replace(CONFIG, seed=CONFIG.seed + 1, first_students=16)
    c = steps.start_iteration(steps.init_state(SPACE, other), SPACE, other)
    assert [x.actions for x in c.pending][:8] != [x.actions for x in a.pending]


def test_best_record_and_finish_rules():
    state, _ = one_iteration(steps.init_state(SPACE, CONFIG), lambda c: 0.2 + 0.01 * c.id)
    best = steps.best_record(state)
    assert best.id == max(s.id for s in state.students)
    candidate = steps.argmax_candidate(state, SPACE, CONFIG)
    record = steps.ArgmaxRecord(iteration=0, actions=candidate.actions, arch=candidate.arch,
                                hparams=candidate.hparams, reward=0.99, status="ok", best_epoch=3, metrics={},
                                checkpoint="argmax/iteration_000")  # fmt: skip
    state = steps.add_argmax(state, record)
    assert state.phase == "done" and steps.best_record(state) is record
    assert not steps.finished(state, CONFIG)
    assert steps.finished(state, dataclasses.replace(CONFIG, target_auc=0.95))
    assert steps.finished(dataclasses.replace(state, iteration=CONFIG.iterations), CONFIG)
    failed = dataclasses.replace(record, status="failed")
    assert steps.best_record(dataclasses.replace(state, argmax=(failed,))) is best


def test_document_round_trip_gives_the_same_state():
    state, _ = one_iteration(steps.init_state(SPACE, CONFIG), lambda c: 0.5)
    state = steps.start_iteration(steps.next_iteration(state), SPACE, CONFIG)
    back = steps.state_from_document(steps.state_document(state), state.arrays, SPACE)
    assert (back.iteration, back.phase) == (state.iteration, state.phase)
    assert (back.pending, back.students, back.probabilities) == (state.pending, state.students, state.probabilities)
    line = state.students[0].to_json()
    assert list(line)[:5] == ["id", "iteration", "actions", "arch", "hparams"] and line["arch"]["conv"]


def test_checkpoint_restores_the_state_and_refuses_old_formats(tmp_path):
    state, _ = one_iteration(steps.init_state(SPACE, CONFIG), lambda c: 0.7)
    store = SearchCheckpoints(tmp_path / "checkpoints")
    store.save(state)
    fresh = steps.init_state(SPACE, CONFIG)
    back = SearchCheckpoints(tmp_path / "checkpoints").restore(fresh, SPACE, Log())
    assert back.students == state.students and back.phase == state.phase
    np.testing.assert_array_equal(np.asarray(back.controller.logits), np.asarray(state.controller.logits))
    old = tmp_path / "old"  # the same arrays, the JSON of jaxcp's first search-state format
    manager = ocp.CheckpointManager(old, options=ocp.CheckpointManagerOptions(create=True))
    args = ocp.args.Composite(state=ocp.args.StandardSave(serialization.to_state_dict(state.arrays)),
                              meta=ocp.args.JsonSave({"iteration": 0, "pending": None, "students": []}))  # fmt: skip
    manager.save(1, args=args)
    manager.wait_until_finished()
    with pytest.raises(InputError, match="another jaxcp version"):
        SearchCheckpoints(old).restore(fresh, SPACE, Log())
