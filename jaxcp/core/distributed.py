"""Many processes, one job: JAX's multi-controller runtime (`jax.distributed`) behind a small `Cluster`.

    cluster = initialize()                                   # one process: a no-op Cluster (the default)
    cluster = initialize(auto=True)                          # SLURM / Open MPI: jax.distributed detects them
    cluster = initialize("host:1234", num_processes=2, process_id=0)
    mine = cluster.share(len(groups))                        # the indices this process works on
    everyone = cluster.gather({i: text for i in mine})       # {index: text} from every process
    value = cluster.broadcast(text if cluster.is_writer else None)
    cluster.close(exit_code)

Every process runs the same program; what they exchange is short text (JSON), through the coordinator's
key-value store (the distributed runtime client of `jax.distributed`), not through device collectives: the
store carries strings as they are, needs no device buffers or padding, and a wait on it has no deadline of
its own, so a process may wait hours for another one's long training. (Device collectives on CPU go
through gloo, which `initialize` selects for whatever sharded programs may need across processes.)

A process that dies must not leave the others waiting. A watchdog thread in each process beats a counter in
the store every `BEAT` seconds and reads the others'; when a process's beat stops for half the heartbeat
timeout, or it reported a failure (`close` with a non-zero code), or the coordinator (process 0) cannot be
reached, the watchdog prints one line on stderr and ends this process with `EXIT_PEER_LOST`. JAX's own
heartbeat check would also end it, with a C++ stack trace and SIGABRT; it is given `RUNTIME_MARGIN` times
the heartbeat timeout so that it stays a fallback (with the same timeout it noticed a killed process as
soon as the watchdog and sometimes first).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator

import jax
from jax._src import distributed as jax_distributed  # the runtime's client: jax has no public handle to it

from jaxcp.core.errors import InputError

EXIT_PEER_LOST = 3
BEAT = 1.0  # seconds between two watchdog beats
WAIT_MS = 10_000  # one blocking read of the store; repeated until the value is there
PREFIX = "jaxcp"
DEFAULT_HEARTBEAT = 100  # seconds, as jax.distributed's default
RUNTIME_MARGIN = 4  # jax.distributed's own heartbeat timeout, in heartbeat timeouts (see the module docstring)


class Cluster:
    """One process alone: it trains everything, writes everything and exchanges nothing."""

    process_index: int = 0
    process_count: int = 1
    advice: str = ""  # the end of the line printed when another process is lost (what to do)

    @property
    def is_writer(self) -> bool:
        """The process that writes the run folder and checkpoints: process 0."""
        return self.process_index == 0

    def share(self, count: int) -> list[int]:
        """The indices of `count` work items that this process takes: round robin over the processes."""
        return list(range(self.process_index, count, self.process_count))

    def gather(self, local: dict[int, str]) -> dict[int, str]:
        """Every process's `local` items together, by index (each process passes those of its `share`)."""
        return dict(sorted(local.items()))

    def broadcast(self, value: str | None) -> str:
        """Process 0's `value` on every process (the others pass None)."""
        if value is None:
            raise ValueError("broadcast: process 0 must give a value")
        return value

    def barrier(self) -> None:
        """Wait until every process got here."""

    @contextlib.contextmanager
    def writer_first(self) -> Iterator[None]:
        """Run the block on process 0 first, then on the others (e.g. generate a shared file once)."""
        yield

    def close(self, code: int = 0) -> None:
        """The end of the job on this process: with 0 after the others finished too; else at once."""


class MultiProcessCluster(Cluster):
    """A process of a `jax.distributed` job (see the module docstring)."""

    def __init__(self, client, process_index: int, process_count: int, heartbeat_timeout: float, advice: str = ""):
        self.client, self.process_index, self.process_count = client, process_index, process_count
        self.stale_after = heartbeat_timeout / 2
        self.advice = advice
        self._rounds = 0
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="jaxcp-watchdog", daemon=True)
        self._watchdog.start()

    def _next_key(self, kind: str) -> str:
        self._rounds += 1  # every process makes the same calls in the same order
        return f"{PREFIX}/{kind}/{self._rounds}"

    def _get(self, key: str) -> str:
        """The value at `key`, waiting as long as it takes (the watchdog ends a wait for a dead process)."""
        while True:
            try:
                return self.client.blocking_key_value_get(key, WAIT_MS)
            except Exception as error:  # jaxlib raises one type for all; only a deadline is retried
                if "DEADLINE_EXCEEDED" not in str(error):
                    self._lost(f"lost the coordinator (process 0): {_first_line(error)}")

    def gather(self, local: dict[int, str]) -> dict[int, str]:
        key = self._next_key("gather")
        self.client.key_value_set(f"{key}/{self.process_index}", json.dumps({str(k): v for k, v in local.items()}))
        items: dict[int, str] = {}
        for process in range(self.process_count):
            items.update({int(k): v for k, v in json.loads(self._get(f"{key}/{process}")).items()})
        return dict(sorted(items.items()))

    def broadcast(self, value: str | None) -> str:
        key = self._next_key("broadcast")
        if self.is_writer:
            if value is None:
                raise ValueError("broadcast: process 0 must give a value")
            self.client.key_value_set(key, value)
            return value
        return self._get(key)

    def barrier(self) -> None:
        self.gather({})

    @contextlib.contextmanager
    def writer_first(self) -> Iterator[None]:
        if not self.is_writer:
            self.barrier()
        yield
        if self.is_writer:
            self.barrier()

    def close(self, code: int = 0) -> None:
        if code == 0:
            self.barrier()
            self.client.key_value_set(f"{PREFIX}/done/{self.process_index}", "0")
            self._stop.set()
            jax.distributed.shutdown()
            return
        with contextlib.suppress(Exception):  # tell the others why, if the coordinator is still there
            self.client.key_value_set(f"{PREFIX}/failed/{self.process_index}", str(code))
            if self.is_writer:  # the store lives in this process: give the others' watchdogs time to read it
                time.sleep(3 * BEAT)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # not the runtime's shutdown barrier: the other processes will not come to it

    def _lost(self, reason: str) -> None:
        """Report why the job cannot go on and end this process (from any thread)."""
        print(f"error: process {self.process_index} of {self.process_count}: {reason}; the job stops"
              f"{'; ' + self.advice if self.advice else ''}", file=sys.stderr, flush=True)  # fmt: skip
        sys.stdout.flush()
        os._exit(EXIT_PEER_LOST)

    def _watch(self) -> None:
        """Beat, and end this process when another one stopped (see the module docstring)."""
        me, seen = self.process_index, {}
        start = time.monotonic()
        while not self._stop.wait(BEAT):
            try:
                self.client.key_value_increment(f"{PREFIX}/alive/{me}", 1)
                beats = dict(self.client.key_value_dir_get(f"{PREFIX}/alive/"))
                failed = dict(self.client.key_value_dir_get(f"{PREFIX}/failed/"))
                done = dict(self.client.key_value_dir_get(f"{PREFIX}/done/"))
            except Exception as error:
                if self._stop.is_set():
                    return
                self._lost(f"lost the coordinator (process 0): {_first_line(error)}")
                return
            now = time.monotonic()
            for process in range(self.process_count):
                key = f"{PREFIX}/{{}}/{process}"
                if process == me or key.format("done") in done:
                    continue
                if key.format("failed") in failed:
                    self._lost(f"process {process} stopped with exit code {failed[key.format('failed')]} "
                               f"(its log says why)")  # fmt: skip
                beat = beats.get(key.format("alive"))
                if seen.get(process, (None,))[0] != beat:
                    seen[process] = (beat, now)
                since = now - seen.get(process, (None, start))[1]
                if since > self.stale_after:
                    self._lost(f"process {process} stopped answering (no sign of life for {since:.0f} s)")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def parse_coordinator(text: str, flag: str = "--coordinator") -> str:
    """HOST:PORT, checked."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{flag} {text!r}: expected HOST:PORT (e.g. 10.0.0.1:12345)")
    return text


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, auto: bool = False, heartbeat_timeout: int = DEFAULT_HEARTBEAT, advice: str = "") -> Cluster:
    """This process's `Cluster`: alone (no arguments), detected from the launcher (`auto`: SLURM, Open MPI),
    or as given. Call it before anything else uses JAX. `advice` ends the line printed when a process is lost.
    """
    manual = (coordinator, num_processes, process_id)
    if not auto and all(v is None for v in manual):
        return Cluster()
    if not auto and any(v is None for v in manual):
        raise InputError("--coordinator, --num-processes and --process-id go together (or use --distributed to "
                         "detect them from SLURM / Open MPI)")  # fmt: skip
    if auto and any(v is not None for v in manual):
        raise InputError("--distributed detects the processes itself: give it without --coordinator, "
                         "--num-processes and --process-id")  # fmt: skip
    if not auto:
        parse_coordinator(coordinator)
        if num_processes < 1:
            raise InputError(f"--num-processes must be at least 1, got {num_processes}")
        if not 0 <= process_id < num_processes:
            raise InputError(f"--process-id {process_id} is out of range for --num-processes {num_processes} "
                             f"(0 to {num_processes - 1})")  # fmt: skip
    if heartbeat_timeout < 2:
        raise InputError(f"--heartbeat-timeout must be at least 2 seconds, got {heartbeat_timeout}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   heartbeat_timeout_seconds=int(RUNTIME_MARGIN * heartbeat_timeout))  # fmt: skip
    except (ValueError, RuntimeError) as error:
        if auto:
            raise InputError(f"--distributed: no SLURM or Open MPI job to take the processes from "
                             f"({_first_line(error)}); start the command with srun or mpirun, or give "
                             f"--coordinator, --num-processes and --process-id") from None  # fmt: skip
        raise InputError(f"--coordinator {coordinator}: cannot start the distributed runtime: "
                         f"{_first_line(error)}") from None  # fmt: skip
    jax.devices()  # every process's devices are exchanged at the first backend use: do it now, all together
    return MultiProcessCluster(jax_distributed.global_state.client, jax.process_index(), jax.process_count(),
                               heartbeat_timeout, advice)  # fmt: skip


def single_process_checkpoint_options() -> dict:
    """Keyword arguments for Orbax checkpointers and managers that this process uses alone (the writer's run
    folder): without them Orbax waits at barriers for every process of a `jax.distributed` job."""
    import orbax.checkpoint as ocp  # slow to import: only when a checkpoint is written or read

    if jax.process_count() == 1:
        return {}
    me = jax.process_index()
    return {"multiprocessing_options": ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})}
