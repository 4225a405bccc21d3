"""The search's state as one typed, frozen value, and the pure steps that advance it.

    state = init_state(space, config)
    state = start_iteration(state, space, config)        # sample the iteration's candidates, decoded once
    for group in candidate_groups(state):                 # unfinished candidates of one (arch, batch size)
        state = add_students(state, train(group))         # the loop trains (groups at once, over devices)
    state, info = update_controller(state, config)        # REINFORCE + replay, phase -> "argmax" or "done"
    state = add_argmax(state, record)                      # the long candidate, phase -> "done"
      or state = defer_argmax(state, space, config)        # its training owed (runs beside what follows)
         ... state = settle_argmax(state, record)          # once it is trained, in any later phase
    state = next_iteration(state)
    state = set_held_out(state, result)                    # after the last iteration: the held-out result

No step touches files, clocks or training: the loop (`jaxcp.nas.loop`) does those and checkpoints the state
after every step that changes it (`jaxcp.nas.checkpoint`), so resuming is restoring the state and calling the
same steps. Sampling keys derive from (seed, iteration), so a resumed run draws what the uninterrupted one
drew.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import jax
import numpy as np

from jaxcp.core.config import from_dict, jsonable, to_dict
from jaxcp.model.arch import Arch
from jaxcp.nas import controller, replay
from jaxcp.nas.config import SearchConfig
from jaxcp.nas.controller import ControllerState
from jaxcp.nas.replay import ReplayMemory
from jaxcp.nas.space import SearchSpace
from jaxcp.training.hparams import HParams

PHASES = ("students", "argmax", "done")
MAX_GROUP = 8


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One sampled student: its id, the controller's choice indices, and what they decode to."""

    id: int
    actions: tuple[int, ...]
    arch: Arch
    hparams: HParams


@dataclasses.dataclass(frozen=True)
class StudentRecord:
    """A trained student (one line of students.jsonl)."""

    id: int
    iteration: int
    actions: tuple[int, ...]
    arch: Arch
    hparams: HParams
    reward: float  # mean over the student's seeds of the best validation AUC
    rewards: tuple[float, ...]
    status: str  # ok | early_stopped | failed
    best_epoch: int
    metrics: dict
    params: int | None = None
    macs: int | None = None
    seconds_compile: float = 0.0  # of its group (students trained together), as seconds_train and _eval
    seconds_train: float = 0.0
    seconds_eval: float = 0.0
    seconds_compile_hidden: float = 0.0  # compiled in the background while devices trained other groups
    seconds_compile_waited: float = 0.0  # its device waited for the compiler
    group: int = -1  # the first candidate id of its group (-1: not recorded)

    def to_json(self) -> dict:
        return jsonable(to_dict(self))

    @classmethod
    def from_json(cls, data: dict) -> StudentRecord:
        return _record_from_json(cls, data)


@dataclasses.dataclass(frozen=True)
class ArgmaxRecord:
    """An iteration's argmax candidate after its long training."""

    iteration: int
    actions: tuple[int, ...]
    arch: Arch
    hparams: HParams
    reward: float
    status: str
    best_epoch: int
    metrics: dict
    checkpoint: str  # relative to the run folder
    seconds_train: float = 0.0
    seconds_compile: float = 0.0
    seconds_overlapped: float = 0.0  # of its training, while the search went on (not waited for)

    def to_json(self) -> dict:
        return jsonable(to_dict(self))

    @classmethod
    def from_json(cls, data: dict) -> ArgmaxRecord:
        return _record_from_json(cls, data)


def _record_from_json(cls, data: dict):
    values = dict(data)
    values["actions"] = tuple(int(a) for a in values["actions"])
    values["arch"] = from_dict(Arch, values["arch"], "search state arch")
    values["hparams"] = from_dict(HParams, values["hparams"], "search state hparams")
    if "rewards" in values:
        values["rewards"] = tuple(values["rewards"])
    values["reward"] = float("nan") if values["reward"] is None else values["reward"]
    return cls(**values)


Record = StudentRecord | ArgmaxRecord


@dataclasses.dataclass(frozen=True)
class SearchState:
    """Everything the search needs to continue: what a checkpoint holds.

    controller, replay: array state (pytrees); pending: the current iteration's candidates (None before
    they are sampled); probabilities: per finished iteration, the policy after it and how it went,
    ({"iteration": i, "probabilities": [[p, ...] per decision], "entropy": nats, "mean_reward": r}, ...);
    held_out: the summary's "held_out" entry (`jaxcp.nas.heldout`), None until the held-out step ran;
    argmax_due: argmax candidates chosen but not trained yet, as (iteration, actions) (`defer_argmax`).
    """

    controller: ControllerState
    replay: ReplayMemory
    iteration: int = 0
    phase: str = "students"
    pending: tuple[Candidate, ...] | None = None
    students: tuple[StudentRecord, ...] = ()
    argmax: tuple[ArgmaxRecord, ...] = ()
    probabilities: tuple[dict, ...] = ()
    held_out: dict | None = None  # the best candidate on held-out infants, once the iterations are done
    argmax_due: tuple[tuple[int, tuple[int, ...]], ...] = ()

    def __post_init__(self):
        if self.phase not in PHASES:
            raise ValueError(f"unknown search phase {self.phase!r}")

    @property
    def arrays(self) -> dict[str, Any]:
        """The array part (what Orbax saves as a pytree)."""
        return {"controller": self.controller, "replay": self.replay}

    def best_reward(self) -> float:
        return max((s.reward for s in self.students), default=float("nan"))


def init_state(space: SearchSpace, config: SearchConfig) -> SearchState:
    """A uniform policy, an empty replay memory, iteration 0."""
    return SearchState(
        controller=controller.init(space.num_choices, config.controller),
        replay=replay.init(config.replay.capacity, len(space.num_choices), config.replay.batch),
    )


def iteration_key(config: SearchConfig, iteration: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(config.seed), iteration)


def decode(space: SearchSpace, candidate_id: int, actions) -> Candidate:
    actions = tuple(int(a) for a in actions)
    arch, hparams = space.decode(actions)
    return Candidate(candidate_id, actions, arch, hparams)


def start_iteration(state: SearchState, space: SearchSpace, config: SearchConfig) -> SearchState:
    """Sample this iteration's candidates (a no-op when they are already sampled): from the policy, or
    uniformly from the space with `controller.strategy: random`."""
    if state.pending is not None:
        return state
    count = config.first_students if state.iteration == 0 else config.students
    key = iteration_key(config, state.iteration)
    if config.controller.strategy == "random":
        actions = np.asarray(space.sample_many(key, count))
    else:
        actions = np.asarray(controller.sample(key, state.controller, count))
    first_id = len(state.students)
    pending = tuple(decode(space, first_id + i, row) for i, row in enumerate(actions))
    return dataclasses.replace(state, pending=pending)


def unfinished(state: SearchState) -> tuple[Candidate, ...]:
    done = {s.id for s in state.students}
    return tuple(c for c in state.pending or () if c.id not in done)


def group_size(count: int, max_group: int = MAX_GROUP) -> int:
    """The compiled student count of an architecture with `count` candidates in an iteration: the next power
    of two, at most `max_group`; its groups are padded to this size (one compile per iteration)."""
    return min(max_group, 1 << max(count - 1, 0).bit_length())


def group_candidates(candidates: tuple[Candidate, ...], max_group: int = MAX_GROUP) -> list[tuple[Candidate, ...]]:
    """Candidates grouped by (architecture, batch size) in order of first appearance (one compiled program
    each), every group cut into chunks of `group_size` of its count (the last chunk may be shorter)."""
    groups: dict = defaultdict(list)
    for c in candidates:
        groups[(c.arch, c.hparams.batch_size)].append(c)
    chunks = []
    for members in groups.values():
        size = group_size(len(members), max_group)
        chunks.extend(tuple(members[i : i + size]) for i in range(0, len(members), size))
    return chunks


def candidate_groups(state: SearchState) -> list[tuple[Candidate, ...]]:
    """The groups of this iteration's candidates still to train: `group_candidates` of all of them (so that a
    resumed iteration groups as the uninterrupted one did), less the students already trained."""
    done = {s.id for s in state.students}
    groups = [tuple(c for c in g if c.id not in done) for g in group_candidates(state.pending or ())]
    return [g for g in groups if g]


def padded_size(state: SearchState, group: tuple[Candidate, ...]) -> int:
    """The student count `group` is compiled and trained for (padding dropped from the results)."""
    key = (group[0].arch, group[0].hparams.batch_size)
    return group_size(sum((c.arch, c.hparams.batch_size) == key for c in state.pending or group))


def add_students(state: SearchState, records: list[StudentRecord]) -> SearchState:
    """Record trained students, kept in id order whatever order their groups finished in."""
    return dataclasses.replace(state, students=tuple(sorted(state.students + tuple(records), key=lambda s: s.id)))


def update_controller(state: SearchState, config: SearchConfig) -> tuple[SearchState, dict]:
    """The end of an iteration's students: one REINFORCE step on them plus a replay batch, and the fresh
    students above the replay threshold enter the memory (random search: no update). The iteration's mean
    reward and the policy's entropy are recorded. Phase -> "argmax" (or "done" when argmax training is off)."""
    fresh = [s for s in state.students if s.iteration == state.iteration]
    fresh_actions = np.asarray([s.actions for s in fresh], np.int32)
    fresh_rewards = np.asarray([s.reward for s in fresh], np.float32)
    if config.controller.strategy == "random":
        return _record_iteration(state, config, state.controller, state.replay, fresh_rewards), {
            "loss": 0.0, "rollouts": 0}
    actions, rewards, memory = fresh_actions, fresh_rewards, state.replay
    if config.replay.enabled:
        replay_key = jax.random.fold_in(iteration_key(config, state.iteration), 1)
        r_actions, r_rewards, valid, memory = replay.sample(replay_key, memory)
        keep = np.asarray(valid, bool)
        actions = np.concatenate([actions, np.asarray(r_actions)[keep]])
        rewards = np.concatenate([rewards, np.asarray(r_rewards)[keep]])
    policy, info = controller.update(state.controller, actions, rewards)
    if config.replay.enabled:
        memory = replay.push(memory, fresh_actions, fresh_rewards, config.replay.threshold)
    new = _record_iteration(state, config, policy, memory, fresh_rewards)
    return new, {**{k: float(v) for k, v in info.items()}, "rollouts": int(len(actions))}


def _record_iteration(state: SearchState, config: SearchConfig, policy: ControllerState, memory: ReplayMemory,
                      rewards: np.ndarray) -> SearchState:
    probs = [np.asarray(p).round(6).tolist() for p in controller.probabilities(policy)]
    entry = {"iteration": state.iteration, "probabilities": probs, "entropy": round(controller.entropy(policy), 6),
             "mean_reward": float(np.mean(rewards)) if rewards.size else None}  # fmt: skip
    return dataclasses.replace(state, controller=policy, replay=memory, probabilities=state.probabilities + (entry,),
                               phase="argmax" if config.student.argmax_epochs > 0 else "done")  # fmt: skip


def argmax_candidate(state: SearchState, space: SearchSpace, config: SearchConfig) -> Candidate:
    """The candidate the strategy proposes for the long schedule (id -1: not a student): the policy's most
    probable one, or with random search the best student so far."""
    if config.controller.strategy == "random":
        best = max((s for s in state.students if s.status != "failed"), key=lambda s: s.reward, default=None)
        if best is not None:
            return decode(space, -1, best.actions)
    return decode(space, -1, controller.argmax(state.controller))


def add_argmax(state: SearchState, record: ArgmaxRecord) -> SearchState:
    return dataclasses.replace(settle_argmax(state, record), phase="done")


def defer_argmax(state: SearchState, space: SearchSpace, config: SearchConfig) -> SearchState:
    """The argmax candidate chosen now (from this state) and owed: recorded in `argmax_due`, phase -> "done",
    so that the next iteration may start while it trains (it does not feed the controller)."""
    candidate = argmax_candidate(state, space, config)
    return dataclasses.replace(state, argmax_due=state.argmax_due + ((state.iteration, candidate.actions),),
                               phase="done")  # fmt: skip


def due_candidates(state: SearchState, space: SearchSpace) -> list[tuple[int, Candidate]]:
    """The owed argmax candidates, (iteration, candidate), oldest first."""
    return [(it, decode(space, -1, actions)) for it, actions in state.argmax_due]


def settle_argmax(state: SearchState, record: ArgmaxRecord) -> SearchState:
    """An argmax candidate's record (owed or not), kept in iteration order; the phase is unchanged."""
    due = tuple(d for d in state.argmax_due if d[0] != record.iteration)
    records = tuple(sorted(state.argmax + (record,), key=lambda a: a.iteration))
    return dataclasses.replace(state, argmax=records, argmax_due=due)


def next_iteration(state: SearchState) -> SearchState:
    return dataclasses.replace(state, iteration=state.iteration + 1, phase="students", pending=None)


def set_held_out(state: SearchState, result: dict) -> SearchState:
    return dataclasses.replace(state, held_out=result)


def finished(state: SearchState, config: SearchConfig) -> bool:
    """All iterations done, or an argmax candidate reached the target AUC."""
    target = config.target_auc
    reached = target is not None and any(a.reward >= target for a in state.argmax)
    return state.iteration >= config.iterations or reached


def validated(state: SearchState) -> list[Record]:
    """The validated candidates: argmax candidates and students that did not fail."""
    return [r for r in (*state.argmax, *state.students) if r.status != "failed"]


def best_record(state: SearchState) -> Record | None:
    """The best validated candidate: argmax candidates and students together, by validation AUC."""
    ok = validated(state)
    return max(ok, key=lambda r: r.reward) if ok else None


# --------------------------------------------------------------------------------------------------------
# The JSON part of a checkpoint

def state_document(state: SearchState) -> dict:
    """Everything but the arrays, as JSON-able data."""
    pending = None if state.pending is None else [{"id": c.id, "actions": list(c.actions)} for c in state.pending]
    return {"iteration": state.iteration, "phase": state.phase, "pending": pending,
            "students": [s.to_json() for s in state.students], "argmax": [a.to_json() for a in state.argmax],
            "probabilities": list(state.probabilities), "held_out": state.held_out,
            "argmax_due": [{"iteration": it, "actions": list(a)} for it, a in state.argmax_due]}  # fmt: skip


def state_from_document(document: dict, arrays: dict, space: SearchSpace) -> SearchState:
    pending = document["pending"]
    return SearchState(
        controller=arrays["controller"],
        replay=arrays["replay"],
        iteration=int(document["iteration"]),
        phase=document["phase"],
        pending=None if pending is None else tuple(decode(space, p["id"], p["actions"]) for p in pending),
        students=tuple(StudentRecord.from_json(s) for s in document["students"]),
        argmax=tuple(ArgmaxRecord.from_json(a) for a in document["argmax"]),
        probabilities=tuple(document["probabilities"]),
        held_out=document.get("held_out"),
        argmax_due=tuple((int(d["iteration"]), tuple(int(a) for a in d["actions"]))
                         for d in document.get("argmax_due", ())),  # fmt: skip
    )
