"""Students per hour of a search preset on this machine, and the peak memory of the search process.

    python benchmarks/search.py [--config quick] [--set iterations=1 ...]

Runs `python -m jaxcp.search --config CONFIG --out TMP/run --quiet` as a new process in an empty
temporary folder, with an empty persistent compilation cache, so the figures are a first run's: the
synthetic cohort is generated, every architecture compiles. Wall time is split at the "search: ..." line
(data ready) into data and search; students per hour counts the sampled students and the argmax students
(which train longer) over the search part. Peak RSS is the largest resident set of the search process or
any process it waited for (`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`).

Prints a table and writes benchmarks/results/search_<config>.json (machine, versions, settings).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import jax

from jaxcp.nas.heldout import describe_best, describe_held_out

RESULTS = common.RESULTS
RECORD_KEYS = ("id", "iteration", "reward", "status", "seconds_compile", "seconds_train", "seconds_eval")


def report_lines(summary: dict) -> list[str]:
    """The search's closing lines about its best candidate, as the command prints them."""
    best = [describe_best(summary["best"])] if summary.get("best") else []
    return best + (describe_held_out(summary["held_out"]) if summary.get("held_out") else [])


def run_search(config: str, overrides: list[str], folder: Path) -> dict:
    env = dict(os.environ, JAXCP_CACHE_DIR=str(folder / "xla_cache"))
    env.pop("JAXCP_NO_CACHE", None)
    argv = [sys.executable, "-m", "jaxcp.search", "--config", config, "--out", str(folder / "run"), "--quiet"]
    for item in overrides:
        argv += ["--set", item]
    start = time.perf_counter()
    data_ready = None
    with subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            if data_ready is None and line.startswith("search:"):
                data_ready = time.perf_counter() - start
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"search failed with exit status {proc.returncode}")
    summary = json.loads((folder / "run" / "summary.json").read_text())
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    data_ready = data_ready or 0.0
    students = summary["students"] + len(summary["argmax"])
    return {"students": summary["students"], "argmax_students": len(summary["argmax"]),
            "iterations": summary["iterations"], "seconds_total": total, "seconds_data": data_ready,
            "seconds_search": total - data_ready,
            "students_per_hour": students / max(total - data_ready, 1e-9) * 3600,
            "peak_rss_gb": peak_kb / 2**20, "best": summary["best"], "held_out": summary["held_out"],
            "report": report_lines(summary),
            "student_records": [{k: v for k, v in json.loads(line).items() if k in RECORD_KEYS}
                                for line in (folder / "run" / "students.jsonl").read_text().splitlines()]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quick", help="search preset name or YAML file (default quick)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a search setting, e.g. iterations=1 (repeatable)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="jaxcp-bench-search-") as folder:
        row = run_search(args.config, args.set, Path(folder))
    print(f"search preset {args.config} {' '.join(args.set)} on {jax.default_backend()} "
          f"({os.cpu_count()} CPUs, load {load_before[0]:.1f})")
    print(f"  {'students (sampled + argmax)':<34} {row['students']} + {row['argmax_students']}")
    print(f"  {'data (cohort, load) s':<34} {row['seconds_data']:.1f}")
    print(f"  {'search s':<34} {row['seconds_search']:.1f}")
    print(f"  {'students per hour':<34} {row['students_per_hour']:.0f}")
    print(f"  {'peak RSS GB':<34} {row['peak_rss_gb']:.2f}")
    result = {**common.environment(load_before), "config": args.config,
              "overrides": args.set, **row}  # fmt: skip
    name = Path(args.config).stem
    common.write_json(RESULTS / f"search_{name}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
