"""Many processes (`jaxcp.core.distributed`): the share / gather / broadcast contract over a stand-in key-value
store, the search's bad flags and how its cluster flags reach jax.distributed, and one job on 127.0.0.1: two
processes train iteration 0, one of them is killed and the other stops with one clear line, and a `--resume`
by one process finishes it, equal to a one-process search."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import pytest

from jaxcp import search
from jaxcp.core import distributed
from jaxcp.core.distributed import EXIT_PEER_LOST, Cluster, MultiProcessCluster, initialize
from jaxcp.core.errors import InputError
from jaxcp.data.skeleton import load_layout
from jaxcp.data.synth import ensure_synthetic
from jaxcp.nas.config import load_search_config

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = str(REPO / "configs" / "search" / "test.yaml")
# the tiny preset (one student per iteration: the programs of tests/test_search.py, from the compilation
# cache) for two iterations, the second left to the resumed run; no held-out step (its broadcast is
# exercised all the same)
SMALL = ["--config", TEST_CONFIG, "--quiet", "--set", "iterations=2", "--set", "test_split="]
HEARTBEAT = "6"  # seconds: a process silent for 3 s is taken as dead


class StandInStore:
    """The few calls of jax.distributed's client that the cluster makes, in memory, for threads."""

    def __init__(self):
        self.values: dict[str, str] = {}
        self.changed = threading.Condition()

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        with self.changed:
            assert allow_overwrite or key not in self.values, key
            self.values[key] = value
            self.changed.notify_all()

    def blocking_key_value_get(self, key: str, timeout_in_ms: int) -> str:
        with self.changed:
            if not self.changed.wait_for(lambda: key in self.values, timeout_in_ms / 1000):
                raise RuntimeError(f"DEADLINE_EXCEEDED: {key}")
            return self.values[key]

    def key_value_increment(self, key: str, increment: int) -> int:
        with self.changed:
            value = int(self.values.get(key, 0)) + increment
            self.values[key] = str(value)
            return value

    def key_value_dir_get(self, prefix: str) -> list[tuple[str, str]]:
        with self.changed:
            return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]


def test_share_gather_broadcast_over_three_processes():
    store, count, items = StandInStore(), 3, 8
    results: dict[int, tuple] = {}

    def process(index: int) -> None:
        cluster = MultiProcessCluster(store, index, count, heartbeat_timeout=600)
        mine = cluster.share(items)
        gathered = cluster.gather({i: f"item {i} from {index}" for i in mine})
        told = cluster.broadcast("from 0" if cluster.is_writer else None)
        results[index] = (mine, gathered, told, cluster.is_writer)
        cluster._stop.set()

    threads = [threading.Thread(target=process, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [results[i][0] for i in range(count)] == [[0, 3, 6], [1, 4, 7], [2, 5]]  # round robin
    want = {i: f"item {i} from {i % count}" for i in range(items)}
    for i in range(count):
        assert results[i][1] == want and list(results[i][1]) == list(range(items))  # everyone's, in order
        assert results[i][2] == "from 0" and results[i][3] == (i == 0)
    alone = Cluster()  # one process: everything is its own, nothing is exchanged
    assert alone.share(3) == [0, 1, 2] and alone.gather({1: "b", 0: "a"}) == {0: "a", 1: "b"}
    assert alone.broadcast("x") == "x" and alone.is_writer


@pytest.mark.parametrize("argv, message", [
    (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2", "--out", "r"],
     "--process-id 2 is out of range for --num-processes 2 (0 to 1)"),
    (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0", "--out", "r"],
     "--coordinator 'localhost': expected HOST:PORT"),
    (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--out", "r"],
     "--coordinator, --num-processes and --process-id go together"),
    (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "0"],
     "--out RUN_DIR (or --resume RUN_DIR) is required with many processes"),
    (["--distributed", "--process-id", "0", "--out", "r"], "--distributed detects the processes itself"),
])  # fmt: skip
def test_bad_cluster_flags_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        search.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_initialize_alone_is_a_plain_cluster():
    cluster = initialize()
    assert type(cluster) is Cluster and cluster.process_count == 1
    with pytest.raises(InputError, match="at least 1"):
        initialize("127.0.0.1:1", 0, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, cwd: Path, log: Path) -> subprocess.Popen:
    """The search command in a subprocess (the test session's compilation cache: tests/conftest.py)."""
    env = {k: v for k, v in os.environ.items() if k != "JAXCP_NO_CACHE"}
    return subprocess.Popen([sys.executable, "-m", "jaxcp.search", *args], cwd=cwd, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)  # fmt: skip


def start_job(args, cwd: Path, name: str) -> list[subprocess.Popen]:
    """Two processes of one job on 127.0.0.1."""
    hand = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", "--heartbeat-timeout", HEARTBEAT]
    return [start([*args, *hand, "--process-id", str(i)], cwd, cwd / f"{name}-{i}.log") for i in range(2)]


def finish(processes, timeout: float = 300) -> list[int]:
    return [p.wait(timeout) for p in processes]


def students(run_dir: Path) -> list[tuple]:
    lines = (run_dir / "students.jsonl").read_text().splitlines()
    return [(r["id"], r["actions"], r["reward"], r["rewards"]) for r in map(json.loads, lines)]


def wait_for(ready, what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A one-process search; the same search as two processes, one of them killed once iteration 0's student
    is recorded; and the job resumed by one process to its end (another process count than it started
    with). On the tiny preset's synthetic cohort. One job for all the tests below."""
    workdir = tmp_path_factory.mktemp("distributed")
    config = load_search_config(TEST_CONFIG)
    cohort = ensure_synthetic(config.synthetic, config.seed, load_layout(config.layout), workdir / "data", log=print)
    alone = start([*SMALL, "--data", str(cohort), "--out", "alone"], workdir, workdir / "alone.log")
    killed = start_job([*SMALL, "--data", str(cohort), "--out", "pair"], workdir, "killed")
    recorded = workdir / "pair" / "students.jsonl"
    wait_for(lambda: recorded.is_file() and len(students(workdir / "pair")) == 1, "iteration 0's student")
    killed[1].send_signal(signal.SIGKILL)
    killed_at = time.time()
    stopped = killed[0].wait(120)
    seconds_to_stop = time.time() - killed_at
    resumed = start(["--resume", "pair", "--quiet"], workdir, workdir / "resumed.log")
    codes = finish([alone, resumed])
    logs = {p.stem: p.read_text() for p in workdir.glob("*.log")}
    assert codes == [0, 0], logs
    return workdir, logs, stopped, seconds_to_stop


def test_two_processes_and_a_resume_by_one_find_what_one_finds(job):
    workdir, logs, _, _ = job
    alone, pair = workdir / "alone", workdir / "pair"
    assert len(students(pair)) == 2 and students(pair) == students(alone)
    for name in ("controller_probabilities.json", "best.yaml"):
        assert (pair / name).read_text() == (alone / name).read_text(), name
    summary, reference = (json.loads((d / "summary.json").read_text()) for d in (pair, alone))
    assert summary["best"]["reward"] == reference["best"]["reward"] and summary["held_out"] == reference["held_out"]
    assert [a["reward"] for a in summary["argmax"]] == [a["reward"] for a in reference["argmax"]]
    assert [a["iteration"] for a in summary["argmax"]] == [0, 1] and summary["processes"] == 1
    # iteration 0's student by the two processes (process 0 reports it, as gathered), then killed; the
    # resumed process (alone) did not train it again, only what was left: iteration 1 and owed argmax work
    assert "process 0 of 2" in logs["killed-0"]
    assert re.search(r"^iteration 0 student 1/1", logs["killed-0"], flags=re.M)
    assert not re.search(r"^iteration 0 student", logs["resumed"], flags=re.M)
    assert re.search(r"^iteration 1 student 1/1", logs["resumed"], flags=re.M)
    assert "search finished" in logs["resumed"]


def test_a_killed_process_stops_the_job_and_it_resumes(job):
    workdir, logs, stopped, seconds_to_stop = job
    assert stopped == EXIT_PEER_LOST
    assert seconds_to_stop < 30  # the watchdog's 3 s, not a hang
    assert re.search(r"^error: process 0 of 2: process 1 stopped answering \(no sign of life for \d+ s\); the job "
                     r"stops; fix the cause and start the whole job again with --resume pair$", logs["killed-0"],
                     flags=re.M)  # fmt: skip
    assert "resuming from checkpoint step" in logs["resumed"]
    assert (workdir / "pair" / "config.yaml").read_text().count("iterations: 2") == 1


@pytest.mark.parametrize("argv, expected", [
    (["--distributed"], (None, None, None)),  # jax.distributed detects SLURM / Open MPI
    (["--coordinator", "10.0.0.1:1234", "--num-processes", "3", "--process-id", "2"], ("10.0.0.1:1234", 3, 2)),
])  # fmt: skip
def test_cluster_flags_reach_jax_distributed(argv, expected, monkeypatch):
    """No subprocess: jax.distributed.initialize and the cluster are stand-ins that record their arguments."""
    calls = []
    monkeypatch.setattr(distributed.jax.distributed, "initialize",
                        lambda *args, **kwargs: calls.append((*args, kwargs["heartbeat_timeout_seconds"])))
    monkeypatch.setattr(distributed, "MultiProcessCluster", lambda *args, **kwargs: ("cluster", args, kwargs))
    collectives = jax.config.jax_cpu_collectives_implementation
    try:
        cluster = search.connect(search.parse_args([*argv, "--out", "r", "--heartbeat-timeout", "9"]))
    finally:
        jax.config.update("jax_cpu_collectives_implementation", collectives)
    assert calls == [(*expected, 36)]  # JAX's own check: a fallback, 4 times later than the watchdog's
    name, (_, index, count, heartbeat, _), _ = cluster
    assert (name, index, count, heartbeat) == ("cluster", jax.process_index(), jax.process_count(), 9)
