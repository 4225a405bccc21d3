"""What the many-process runtime itself costs (`jaxcp.core.distributed`), without training.

    python benchmarks/processes.py                 # 2 processes on 127.0.0.1, 200 rounds
    python benchmarks/processes.py --processes 4 --rounds 50

Starts the processes of one job on this machine, each as `python benchmarks/processes.py --worker ...`, and
measures in each: the start (importing jax and `initialize`: jax.distributed, the device exchange, the
watchdog), one search round's exchange (`gather` of one group's records per process: 8 students' records of
about 1.5 kB each, as JSON), a `broadcast` of one record from process 0, and the end (`close`: a barrier and
the runtime's shutdown). The search does one gather per round of groups, one broadcast per argmax candidate
and per held-out step, and a few barriers, so the overhead of a search is about (rounds x gather) plus
start and end: compare with a group's training time (seconds to minutes). Writes
benchmarks/results/processes.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import common

RESULTS = common.RESULTS
RECORD = json.dumps({"id": 0, "reward": 0.5, "metrics": {f"m{i}": 0.123456789 for i in range(60)}})


def worker(coordinator: str, count: int, index: int, rounds: int) -> dict:
    start = time.perf_counter()
    from jaxcp.core.distributed import initialize

    cluster = initialize(coordinator, count, index)
    started = time.perf_counter() - start
    group = json.dumps([RECORD] * 8)
    gathers, broadcasts = [], []
    for r in range(rounds):
        t = time.perf_counter()
        everyone = cluster.gather({r * count + index: group})
        gathers.append(time.perf_counter() - t)
        assert len(everyone) == count
        t = time.perf_counter()
        cluster.broadcast(RECORD if cluster.is_writer else None)
        broadcasts.append(time.perf_counter() - t)
    t = time.perf_counter()
    cluster.close(0)
    return {"process": index, "initialize_s": started, "gather_ms": 1000 * statistics.median(gathers),
            "gather_p90_ms": 1000 * sorted(gathers)[int(0.9 * len(gathers))],
            "broadcast_ms": 1000 * statistics.median(broadcasts), "close_s": time.perf_counter() - t,
            "gather_bytes": len(group) * count}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--worker", nargs=3, metavar=("COORDINATOR", "COUNT", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        coordinator, count, index = args.worker
        print(json.dumps(worker(coordinator, int(count), int(index), args.rounds)))
        return 0
    coordinator = f"127.0.0.1:{common.free_port()}"
    command = [sys.executable, __file__, "--rounds", str(args.rounds), "--worker", coordinator, str(args.processes)]
    procs = [subprocess.Popen([*command, str(i)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for i in range(args.processes)]  # fmt: skip
    load_before = os.getloadavg()
    rows = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
    result = {**common.environment(load_before), "processes": args.processes, "rounds": args.rounds, "rows": rows}
    common.write_json(RESULTS / "processes.json", result)
    lines = [f"{args.processes} processes on 127.0.0.1, {args.rounds} rounds ({result['date']})", "",
             "| process | start (s) | gather, median (ms) | gather, p90 (ms) | broadcast (ms) | close (s) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['process']} | {r['initialize_s']:.2f} | {r['gather_ms']:.2f} | {r['gather_p90_ms']:.2f} "
                     f"| {r['broadcast_ms']:.2f} | {r['close_s']:.2f} |")  # fmt: skip
    common.write_text(RESULTS / "processes.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
