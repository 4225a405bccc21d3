"""The search loop (reference §6.3): drives the `SearchState` steps, trains students, checkpoints, reports.

Iteration 0 trains `first_students` students sampled from the controller's policy, later iterations
`students`; students of one iteration that share architecture and batch size are trained together
(vmapped). After each iteration the controller takes one REINFORCE step on the fresh rollouts plus a replay
batch, the students above the replay threshold enter the replay memory, and the policy's argmax candidate
is trained for the long schedule and recorded: in a background thread while the next iteration's students
train (it does not feed the controller; `Search.overlap_argmax`), owed in the state until it is joined.
After the last iteration the best candidate (the one best.yaml names) is scored on held-out infants
(`jaxcp.nas.heldout`): an argmax candidate from its saved model, a student after training it once more,
alone, with its first seed (students keep no model).

The state is checkpointed with Orbax after every group of students and after every update, so a search run
again on its folder trains no finished student again and, on CPU with the same seed, ends in the same
controller state as an uninterrupted run. The run folder holds:

    config.yaml                   the resolved search config (written by the command)
    checkpoints/                  the search state (`jaxcp.nas.checkpoint`)
    students.jsonl                one record per trained student, rewritten after every group
    argmax/iteration_<i>/         each iteration's argmax candidate: model checkpoint and arch.yaml
    best.yaml                     the best validated candidate (argmax candidates and students together),
                                  with the input settings it was found with (features, window, hop)
    best_model/                   the best candidate's model when it is a student (for the held-out step)
    summary.json                  students, iterations, "best" (its record, "ties", "candidates"),
                                  "held_out" (its result on the held-out split), "argmax"
    controller_probabilities.json, rewards.png, controller_probabilities.png

In a job of many processes (`jaxcp.core.distributed`) every process runs this same loop on the same state:
each trains its share of the groups of an iteration (round robin, `process_count` groups at a time), the
records are gathered from all of them in group order, and so the controller, replicated, takes the same
steps everywhere. Process 0 alone trains the argmax candidate and the held-out step and sends their results
to the others, and it alone writes the run folder (`_save`, `_write_results`) and the checkpoints.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import jax
import numpy as np

from jaxcp.core import atomic
from jaxcp.core.config import jsonable
from jaxcp.core.distributed import Cluster
from jaxcp.core.errors import InputError
from jaxcp.data.windows import WINDOW
from jaxcp.model.arch import Arch
from jaxcp.model.counting import complexity
from jaxcp.nas import state as steps
from jaxcp.nas.checkpoint import SearchCheckpoints
from jaxcp.nas.config import SearchConfig
from jaxcp.nas.heldout import HeldOutScorer, at_validation_threshold, count_ties, held_out_result
from jaxcp.nas.plots import plot_search
from jaxcp.nas.space import SearchSpace
from jaxcp.nas.state import ArgmaxRecord, Candidate, Record, SearchState, StudentRecord
from jaxcp.training import parallel
from jaxcp.training.archfile import arch_file_text
from jaxcp.training.experiment import Experiment
from jaxcp.training.placement import on_device
from jaxcp.training.students import StudentResult

ARGMAX_ID = 10**6  # student_seed id offset of the argmax candidates


class SearchLog(Protocol):
    """Where the loop reports (the command's progress display)."""

    def line(self, text: str) -> None: ...

    def warn(self, text: str) -> None: ...

    def student(self, record: StudentRecord, index: int, count: int, best: float) -> None: ...


def student_seed(seed: int, student_id: int, replica: int) -> int:
    return (seed * 1_000_003 + student_id * 101 + replica) % (2**31 - 1)


def student_record(candidate: Candidate, iteration: int, results: list[StudentResult], counts: dict,
                   group: int = -1) -> StudentRecord:
    """One student's record from its seeds' results (reward: their mean); `group`: its group's first id."""
    rewards = tuple(r.reward for r in results)
    statuses = {r.status for r in results}
    status = "failed" if statuses == {"failed"} else ("early_stopped" if "early_stopped" in statuses else "ok")
    best = max(results, key=lambda r: r.reward)
    waited = min(results[0].seconds_compile_waited, results[0].seconds_compile)
    return StudentRecord(
        id=candidate.id, iteration=iteration, actions=candidate.actions, arch=candidate.arch,
        hparams=candidate.hparams, reward=float(np.mean(rewards)), rewards=rewards, status=status,
        best_epoch=best.best_epoch, metrics=jsonable(best.metrics), params=counts.get("params"),
        macs=counts.get("macs_thop"), seconds_compile=results[0].seconds_compile,
        seconds_train=results[0].seconds_train, seconds_eval=results[0].seconds_eval,
        seconds_compile_hidden=results[0].seconds_compile - waited, seconds_compile_waited=waited, group=group,
    )  # fmt: skip


def compile_totals(state: SearchState) -> dict:
    """The students' compile seconds over their groups (each group counted once): "seconds" in all,
    "seconds_hidden" behind other groups' training, "seconds_waited" by the devices, and "groups"."""
    groups = {(s.iteration, s.group): s for s in state.students}
    return {"groups": len(groups), **{key: round(sum(getattr(s, key) for s in groups.values()), 3) for key in
                                      ("seconds_compile", "seconds_compile_hidden", "seconds_compile_waited")}}


def via_json(records: list[StudentRecord]) -> list[StudentRecord]:
    """The records as a record is stored and gathered (JSON and back): one process holds the same values as
    every process of a job does."""
    return [StudentRecord.from_json(json.loads(json.dumps(r.to_json()))) for r in records]


class Search:
    """One search run in `run_dir`; `run()` continues from the latest checkpoint if there is one.

    `held_out` scores the best candidate's model on held-out infants, or is the reason why there are none.
    `cluster`: the processes of the job (default: this one alone). Student groups are trained on `devices`
    (default: every local device), one group per device at a time.

    `overlap_argmax`: an iteration's argmax candidate trains in a background thread (of process 0) while the
    next iteration's students train, and is joined (`_settle_due`) before the next one starts, after the
    last iteration and before anything reads it; on its own device when the students leave one free. The
    state records it as owed (`argmax_due`) until then, so a resumed run trains it again. Off, or with a
    `target_auc` (whether to go on depends on it), it is trained where it is chosen, the next iteration
    waiting. Either way the records, the controller and best.yaml are the same.
    """

    def __init__(self, config: SearchConfig, run_dir: Path, experiment: Experiment, space: SearchSpace,
                 log: SearchLog, held_out: HeldOutScorer | str = "no held-out split given",
                 cluster: Cluster | None = None, devices: Sequence[jax.Device] | None = None,
                 overlap_argmax: bool = True):
        self.config, self.run_dir, self.exp, self.space, self.log = config, run_dir, experiment, space, log
        self.held_out = held_out
        self.cluster = cluster or Cluster()
        self.devices = tuple(jax.local_devices() if devices is None else devices)
        # the argmax candidate and the best model train where the first group of students did, so that they
        # run the groups' compiled executables (those are per placement) instead of compiling their own
        self._first_device = on_device(self.devices[0])
        self.checkpoints = SearchCheckpoints(run_dir / "checkpoints", self.cluster)
        self._counts: dict[Arch, dict] = {}
        self.overlap_argmax = overlap_argmax
        self._background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxcp-argmax")
        self._argmax_jobs: dict[int, concurrent.futures.Future] = {}  # iteration -> (record, seconds) (writer)
        self.state = self.checkpoints.restore(steps.init_state(space, config), space, log)

    def run(self) -> dict:
        try:
            self._start_due()  # owed by the run this one resumes
            while not steps.finished(self.state, self.config):
                if self.state.phase == "students":
                    self._train_students()
                    self._update_controller()
                if self.state.phase == "argmax":
                    if self._overlaps():
                        self._settle_due()  # the previous iteration's, if it still trains: one at a time
                        self._advance(steps.defer_argmax(self.state, self.space, self.config))
                        self._start_due()
                    else:
                        self._train_argmax()
                self._advance(steps.next_iteration(self.state))
            self._settle_due()  # before anything reads the argmax records
            if self.state.held_out is None:
                held_out = json.dumps(jsonable(self._held_out())) if self.cluster.is_writer else None
                self._advance(steps.set_held_out(self.state, json.loads(self.cluster.broadcast(held_out))))
            return self._finish()
        except BaseException:
            self._settle_after_error()
            raise
        finally:
            self._background.shutdown(wait=False, cancel_futures=True)
            self.checkpoints.close()

    def _advance(self, state: SearchState) -> None:
        """Take the new state and checkpoint it (with students.jsonl)."""
        self.state = state
        if self.cluster.is_writer:
            self._save(state)

    def _save(self, state: SearchState) -> None:
        self.checkpoints.save(state)
        lines = "".join(json.dumps(s.to_json()) + "\n" for s in state.students)
        atomic.write_text(self.run_dir / "students.jsonl", lines)

    def _train_students(self) -> None:
        if self.state.pending is None:
            self._advance(steps.start_iteration(self.state, self.space, self.config))
        first_id, count = self.state.pending[0].id, len(self.state.pending)

        def finished(records: list[StudentRecord]) -> None:  # checkpoint as each group's records arrive
            self._advance(steps.add_students(self.state, records))
            for r in records:
                self.log.student(r, r.id - first_id + 1, count, self.state.best_reward())

        groups = steps.candidate_groups(self.state)
        if self.cluster.process_count == 1:
            self._run_groups(groups, on_done=lambda _, records: finished(via_json(records)))
            return
        step = self.cluster.process_count * len(self.devices)  # a round: one group per device of every process
        for start in range(0, len(groups), step):
            for records in self._train_shared(groups[start : start + step]):
                finished(records)

    def _train_shared(self, groups: list[tuple[Candidate, ...]]) -> list[list[StudentRecord]]:
        """This process's share of `groups` trained on its devices, and the records of all of them gathered
        from every process, in the order of `groups` (as JSON, so that every process holds the same values)."""
        mine = self.cluster.share(len(groups))
        trained = self._run_groups([groups[i] for i in mine]) if mine else []
        local = {i: json.dumps([r.to_json() for r in records]) for i, records in zip(mine, trained, strict=True)}
        gathered = self.cluster.gather(local)
        return [[StudentRecord.from_json(r) for r in json.loads(gathered[i])] for i in range(len(groups))]

    def _run_groups(self, groups: Sequence[tuple[Candidate, ...]],
                    on_done: Callable[[int, list[StudentRecord]], None] | None = None) -> list[list[StudentRecord]]:
        """Train groups of the current iteration's candidates at once over the local devices, `student.seeds`
        seeds per candidate, each group padded to its compiled size (`steps.padded_size`; the padding's
        results dropped); records per group, in the order of `groups`. `on_done(index, records)` is called in
        this thread as each group finishes (in any order)."""
        n, iteration = self.config.student.seeds, self.state.iteration
        jobs = []
        for group in groups:
            padded = group + (group[-1],) * (steps.padded_size(self.state, group) - len(group))
            seeds = tuple(student_seed(self.config.seed, c.id, r) for c in padded for r in range(n))
            jobs.append(parallel.Group(group[0].arch, tuple(c.hparams for c in padded for _ in range(n)), seeds))
        records: list = [None] * len(groups)

        def finished(index: int, results: list[StudentResult]) -> None:
            group, counts = groups[index], self._complexity(groups[index][0].arch)
            records[index] = [student_record(c, iteration, results[k * n : (k + 1) * n], counts, group[0].id)
                              for k, c in enumerate(group)]  # fmt: skip
            if on_done is not None:
                on_done(index, records[index])

        self.exp.train_groups(jobs, self._student_devices(len(jobs)), on_done=finished)
        return records

    def _student_devices(self, groups: int) -> tuple[jax.Device, ...]:
        """The devices for `groups` groups: all, but the one an argmax candidate trains on in the background
        (the first, `_first_device`) when the others are enough for one group each."""
        busy = self.devices[0]
        training = any(not job.done() for job in self._argmax_jobs.values())
        if training and 0 < groups < len(self.devices):
            return tuple(d for d in self.devices if d != busy)
        return self.devices

    def _complexity(self, arch: Arch) -> dict:
        """Trainable parameters and thop MACs at the paper's window (traced, no compilation)."""
        if arch not in self._counts:
            self._counts[arch] = complexity(arch, self.exp.layout, frames=WINDOW, xla=False)
        return self._counts[arch]

    def _update_controller(self) -> None:
        state, info = steps.update_controller(self.state, self.config)
        self._advance(state)
        if self.config.controller.strategy == "random":
            self.log.line(f"iteration {state.iteration}: random search (no policy update)")
        else:
            self.log.line(f"iteration {state.iteration}: controller updated ({info['rollouts']} rollouts, "
                          f"loss {info['loss']:.4f}, policy entropy {state.probabilities[-1]['entropy']:.3f})")

    def _overlaps(self) -> bool:
        return self.overlap_argmax and self.config.target_auc is None

    def _start_due(self) -> None:
        """Start training the owed argmax candidates that are not training yet (process 0 only)."""
        if not self.cluster.is_writer:
            return
        for it, candidate in steps.due_candidates(self.state, self.space):
            if it not in self._argmax_jobs:
                self.log.line(f"iteration {it}: training the argmax candidate for "
                              f"{self.config.student.argmax_epochs} epochs (in the background)")  # fmt: skip
                self._argmax_jobs[it] = self._background.submit(self._timed_argmax, candidate, it)

    def _timed_argmax(self, candidate: Candidate, iteration: int) -> tuple[ArgmaxRecord, float]:
        start = time.perf_counter()
        return self._argmax_record(candidate, iteration), time.perf_counter() - start

    def _settle_due(self) -> None:
        """Wait for the owed argmax candidates (process 0), send their records to every process, record them.
        The seconds of training not waited for here are the record's `seconds_overlapped`."""
        for it, _ in steps.due_candidates(self.state, self.space):
            record = None
            if self.cluster.is_writer:
                start = time.perf_counter()
                record, seconds = self._argmax_jobs.pop(it).result()
                waited = time.perf_counter() - start
                overlapped = round(max(seconds - waited, 0.0), 3)
                record = json.dumps(dataclasses.replace(record, seconds_overlapped=overlapped).to_json())
            record = ArgmaxRecord.from_json(json.loads(self.cluster.broadcast(record)))
            self._advance(steps.settle_argmax(self.state, record))
            self.log.line(f"iteration {it}: argmax candidate validation AUC {record.reward:.3f} "
                          f"({record.seconds_overlapped:.0f} s of its training overlapped)")  # fmt: skip

    def _settle_after_error(self) -> None:
        """The search stops on an error: an argmax candidate that trained to its end is still recorded
        (by a process alone: a job's processes can no longer agree); one that failed, or still trains (it is
        left to finish, unrecorded), stays owed: a resumed run trains it again."""
        for _, job in sorted(self._argmax_jobs.items()):
            done = job.done() and not job.cancelled() and job.exception() is None
            if done and self.cluster.process_count == 1:
                self._advance(steps.settle_argmax(self.state, job.result()[0]))
        self._argmax_jobs.clear()

    def _train_argmax(self) -> None:
        """The argmax candidate, trained by process 0; its record sent to every process."""
        it = self.state.iteration
        candidate = steps.argmax_candidate(self.state, self.space, self.config)
        self.log.line(f"iteration {it}: training the argmax candidate for {self.config.student.argmax_epochs} epochs")
        record = json.dumps(self._argmax_record(candidate, it).to_json()) if self.cluster.is_writer else None
        record = ArgmaxRecord.from_json(json.loads(self.cluster.broadcast(record)))
        self._advance(steps.add_argmax(self.state, record))
        self.log.line(f"iteration {it}: argmax candidate validation AUC {record.reward:.3f}")

    def _argmax_record(self, candidate: Candidate, it: int) -> ArgmaxRecord:
        out = self.run_dir / "argmax" / f"iteration_{it:03d}"
        seed = student_seed(self.config.seed, ARGMAX_ID + it, 0)
        [result] = self.exp.train(candidate.arch, [candidate.hparams], [seed], long=True, checkpoint_dir=out,
                                  placement=self._first_device)
        atomic.write_text(out / "arch.yaml", self._arch_text(candidate.arch, candidate.hparams))
        record = ArgmaxRecord(
            iteration=it, actions=candidate.actions, arch=candidate.arch, hparams=candidate.hparams,
            reward=result.reward, status=result.status, best_epoch=result.best_epoch,
            metrics=jsonable(result.metrics), checkpoint=str(out.relative_to(self.run_dir)),
            seconds_train=result.seconds_train, seconds_compile=result.seconds_compile,
        )  # fmt: skip
        return record

    def _arch_text(self, arch: Arch, hparams) -> str:
        """An arch file with the input settings the candidates were trained with."""
        student = self.config.student
        return arch_file_text(arch, hparams, student.features, student.window, student.hop)

    def _held_out(self) -> dict:
        """The best candidate's result on the held-out split, or {"skipped": reason}."""
        best = steps.best_record(self.state)
        if best is None:
            return {"skipped": "no candidate was validated"}
        if isinstance(self.held_out, str):
            return {"skipped": self.held_out}
        model = self._best_model(best)
        if model is None:
            return {"skipped": "training the best candidate again failed"}
        self.log.line(f"scoring the best candidate ({model.relative_to(self.run_dir)}) on the held-out split "
                      f"{self.held_out.split!r}")  # fmt: skip
        try:
            labels, risk = self.held_out(model)
        except InputError as error:  # e.g. an empty split: the search's results stand without it
            self.log.warn(f"held-out step skipped: {error}")
            return {"skipped": str(error)}
        result = held_out_result(labels, risk, self.held_out.split, str(model.relative_to(self.run_dir)))
        validation = getattr(self.held_out, "validation", None)
        val = validation(model) if validation is not None else None
        if val is not None:
            result["at_validation_threshold"] = at_validation_threshold(labels, risk, *val,
                                                                        self.held_out.val_split)
        if result["warning"]:
            result["advice"] = (f"the cohort is small: estimate the architecture's performance with "
                                f"`jaxcp crossval --arch {self.run_dir / 'best.yaml'} --data {self.held_out.data_dir}`")
        return result

    def _best_model(self, best: Record) -> Path | None:
        """The folder of the best candidate's model: an argmax candidate's saved one, or a student trained
        again (alone, its first seed, the students' schedule) into best_model/; None when that fails."""
        if isinstance(best, ArgmaxRecord):
            return self.run_dir / best.checkpoint
        out = self.run_dir / "best_model"
        self.log.line(f"training the best candidate (student {best.id}) again to keep its model")
        seed = student_seed(self.config.seed, best.id, 0)
        [result] = self.exp.train(best.arch, [best.hparams], [seed], long=False, checkpoint_dir=out,
                                  placement=self._first_device)
        if result.status == "failed":
            return None
        self.log.line(f"the best candidate trained again: validation AUC {result.reward:.3f} (in the search "
                      f"{best.reward:.3f}, the mean over its seeds)")  # fmt: skip
        atomic.write_text(out / "arch.yaml", self._arch_text(best.arch, best.hparams))
        return out

    def _finish(self) -> dict:
        best = steps.best_record(self.state)
        summary_best, overlapped = None, sum(a.seconds_overlapped for a in self.state.argmax)
        if best is not None:
            ties, count = count_ties(r.reward for r in steps.validated(self.state))
            summary_best = {**best.to_json(), "ties": ties, "candidates": count}
        summary = {"students": len(self.state.students), "iterations": self.state.iteration,
                   "best": summary_best, "held_out": self.state.held_out,
                   "argmax": [a.to_json() for a in self.state.argmax], "compile": compile_totals(self.state),
                   "devices": len(self.devices), "processes": self.cluster.process_count,
                   "argmax_seconds_overlapped": round(overlapped, 3)}  # fmt: skip
        if self.cluster.is_writer:
            self._write_results(best, summary)
        return summary

    def _write_results(self, best: Record | None, summary: dict) -> None:
        if best is not None:
            atomic.write_text(self.run_dir / "best.yaml", self._arch_text(best.arch, best.hparams))
        atomic.write_text(self.run_dir / "summary.json", json.dumps(jsonable(summary), indent=2))
        atomic.write_text(self.run_dir / "controller_probabilities.json",
                          json.dumps(list(self.state.probabilities), indent=1))  # fmt: skip
        plot_search(self.run_dir, self.state, self.space)
