"""Many groups of students at once: one group per local device, their programs compiled ahead of time.

`run_groups(experiment, groups, devices)` trains every group (students of one architecture and batch size,
vmapped) to the end of the students' schedule and returns their results in the order of `groups`:

- Each group is given a device before anything runs (`assign_devices`: to the device with the least work
  so far, in order), so that where a group runs, and therefore its numbers, do not depend on timing. All of
  a group's arrays are put on its device (`Placement`), the experiment's data once per device.
- A small pool of compile threads prepares the groups in the order the devices will need them: builds the
  run (its `init` program) and compiles its epoch and prediction programs (`StudentRun.compile_ahead`,
  `jax.jit(...).lower(...).compile()`), while the devices train the groups before it. A thread per device
  takes its groups in order; the time it waits for a group to be ready is the group's exposed compile time
  (`seconds_compile_waited`); the rest of the group's compile time was hidden behind training.
- `on_done(index, results)` is called in the calling thread as each group finishes (in any order), e.g. to
  checkpoint. An error in a group, or in `on_done`, stops the others after their current epoch and is raised.

JAX releases the GIL while compiled code runs and while XLA compiles, so threads are enough. A group's
results are the same whichever device it runs on and however many devices there are: the same program on
the same inputs (bit-identical on CPU).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import jax

from jaxcp.model.arch import Arch
from jaxcp.training.hparams import HParams
from jaxcp.training.placement import Placement, on_device
from jaxcp.training.students import StudentResult, StudentRun

COMPILE_WORKERS = 2  # background compile threads


@dataclasses.dataclass(frozen=True)
class Group:
    """Students of one architecture and batch size, trained together (vmapped): one hparams and seed each."""

    arch: Arch
    hparams: tuple[HParams, ...]
    seeds: tuple[int, ...]


def assign_devices(sizes: Sequence[int], num_devices: int) -> list[int]:
    """The device index of each group, in order: the device with the fewest students assigned so far (ties:
    the lowest index). Depends on the sizes only, never on timing."""
    load, out = [0] * num_devices, []
    for size in sizes:
        device = min(range(num_devices), key=lambda d: (load[d], d))
        load[device] += size
        out.append(device)
    return out


class GroupRunner(Protocol):
    """What `run_groups` needs of an experiment (`jaxcp.training.experiment.Experiment`)."""

    def student_run(self, arch: Arch, hparams: Sequence[HParams], seeds: Sequence[int], *,
                    placement: Placement | None = None) -> StudentRun: ...

    def run_results(self, run: StudentRun) -> list[StudentResult]: ...


class _Stopped(Exception):
    """Another group failed: this one was abandoned."""


def run_groups(experiment: GroupRunner, groups: Sequence[Group], devices: Sequence[jax.Device] | None = None, *,
               on_done: Callable[[int, list[StudentResult]], None] | None = None,
               compile_workers: int = COMPILE_WORKERS) -> list[list[StudentResult]]:
    """Train `groups` over `devices` (default `jax.local_devices()`); one list of results per group, in order.

    Every result carries `seconds_compile` (the group's compile time, in the background or not) and
    `seconds_compile_waited` (how long its device waited for it)."""
    devices = tuple(jax.local_devices() if devices is None else devices)
    where = assign_devices([len(g.seeds) for g in groups], len(devices))
    queues = [[k for k, d in enumerate(where) if d == device] for device in range(len(devices))]
    rank = {k: i for q in queues for i, k in enumerate(q)}  # position in its device's queue
    stop, finished = threading.Event(), queue.Queue()

    def prepare(k: int) -> StudentRun:
        if stop.is_set():
            raise _Stopped
        group = groups[k]
        run = experiment.student_run(group.arch, group.hparams, group.seeds, placement=on_device(devices[where[k]]))
        run.compile_ahead()
        return run

    def train(device: int, ready: dict) -> None:
        for k in queues[device]:
            try:
                start = time.perf_counter()
                run = ready[k].result()
                waited = time.perf_counter() - start - run.compiled.waited  # its own compiles were hidden
                while not run.finished:
                    if stop.is_set():
                        raise _Stopped
                    run.run_epoch()
                results = experiment.run_results(run)
                for r in results:
                    r.seconds_compile_waited = waited + run.compiled.waited
                finished.put((k, results))
            except BaseException as error:  # reported to the calling thread, which stops the others
                finished.put((k, error))
                return

    out: list = [None] * len(groups)
    compiler = concurrent.futures.ThreadPoolExecutor(compile_workers, thread_name_prefix="jaxcp-compile")
    runners = concurrent.futures.ThreadPoolExecutor(len(devices), thread_name_prefix="jaxcp-device")
    try:
        ready = {k: compiler.submit(prepare, k) for k in sorted(range(len(groups)), key=lambda k: (rank[k], k))}
        for device in range(len(devices)):
            runners.submit(train, device, ready)
        for _ in range(len(groups)):
            k, results = finished.get()
            if isinstance(results, BaseException):
                raise results
            out[k] = results
            if on_done is not None:
                on_done(k, results)
    finally:
        stop.set()
        compiler.shutdown(wait=True, cancel_futures=True)
        runners.shutdown(wait=True, cancel_futures=True)
    return out
