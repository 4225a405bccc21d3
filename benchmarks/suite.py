"""How long the test suite takes: the README's two test commands, timed, with a cold compilation cache.

    python benchmarks/suite.py [--skip-slow] [--durations 15]

Runs `python -m pytest -q -p no:cacheprovider tests` (CI's first step) and `... -m slow tests` (its second)
as new processes, each with `JAXCP_NO_CACHE=1` and an empty `JAXCP_CACHE_DIR` (as CI's fresh clone starts),
and records the wall seconds of each, pytest's summary line and its slowest tests (`--durations`). The
house rule it checks: the whole suite under 10 minutes on a 2-core machine. Writes
benchmarks/results/suite.json.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import common

STEPS = {"main": [], "slow": ["-m", "slow"]}


def run_step(extra: list[str], durations: int, cache: str) -> dict:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--durations={durations}", *extra,
            "tests"]
    env = dict(os.environ, JAXCP_NO_CACHE="1", JAXCP_CACHE_DIR=cache)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=common.ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = proc.stdout.splitlines()
    slowest = [line for line in lines if re.match(r"^\d+\.\d+s (call|setup|teardown) ", line)]
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "")
    return {"seconds": seconds, "returncode": proc.returncode, "summary": summary.strip("= "), "slowest": slowest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-slow", action="store_true", help="time only the first command")
    parser.add_argument("--durations", type=int, default=15, help="slowest tests to record")
    args = parser.parse_args(argv)
    load_before, steps = os.getloadavg(), {}
    for name, extra in STEPS.items():
        if name == "slow" and args.skip_slow:
            continue
        with tempfile.TemporaryDirectory(prefix="jaxcp-suite-cache-") as cache:
            steps[name] = run_step(extra, args.durations, cache)
        print(f"{name}: {steps[name]['seconds']:.0f} s, {steps[name]['summary']}", flush=True)
    total = sum(s["seconds"] for s in steps.values())
    result = {**common.environment(load_before), "benchmark": "suite", "steps": steps, "seconds_total": total}
    print(f"total {total:.0f} s; wrote {common.write_json(common.RESULTS / 'suite.json', result)}")
    return 0 if all(s["returncode"] == 0 for s in steps.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
