"""How fast `jaxcp.synth` writes a cohort: by default 557 infants of 3 minutes (the size of the pool in
Groos et al. 2022), which should take under a minute on 2 CPU cores.

    python benchmarks/synth.py [--infants 557] [--minutes 3] [--workers N]

Times the whole `generate_cohort` call (simulation, CSV formatting, writing, in `--workers` processes) into
a temporary folder that is deleted afterwards, and a per-stage breakdown on a few infants in this
process. Prints a table and writes benchmarks/results/synth.json (machine, versions, settings).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import common
import numpy as np

from jaxcp import __version__
from jaxcp.data import synth
from jaxcp.data.skeleton import IN_MOTION_29

RESULTS = common.RESULTS


def stage_times(num_infants: int, minutes: float, fps: float) -> dict[str, float]:
    """Seconds per infant of each stage, in this process (one core)."""
    rng = np.random.default_rng(0)
    num_frames = int(minutes * 60 * fps)
    totals = {"simulate body": 0.0, "camera and pose noise": 0.0, "format CSV": 0.0, "write file": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for i in range(num_infants):
            t0 = time.perf_counter()
            poses, _ = synth.simulate_body(rng, IN_MOTION_29, label=i % 2, num_frames=num_frames, fps=fps,
                                           difficulty=synth.DEFAULT_DIFFICULTY)
            t1 = time.perf_counter()
            coords = synth.camera_view(rng, poses, synth.body_model(IN_MOTION_29), fps)
            t2 = time.perf_counter()
            text = synth.format_csv(IN_MOTION_29, coords)
            t3 = time.perf_counter()
            (Path(folder) / f"orgcoords_{i}.csv").write_bytes(text)
            t4 = time.perf_counter()
            for name, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                totals[name] += dt / num_infants
    return totals


def time_cohort(infants: int, minutes: float, fps: float, workers: int) -> tuple[float, int]:
    """(seconds, bytes written) of one `generate_cohort` call into a temporary folder."""
    parent = Path(tempfile.mkdtemp(prefix="jaxcp-synth-bench-"))
    try:
        start = time.perf_counter()
        synth.generate_cohort(parent / "raw", infants=infants, minutes=minutes, fps=fps, workers=workers)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (parent / "raw").iterdir())
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    return seconds, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--infants", type=int, default=557)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--fps", type=float, default=synth.DEFAULT_FPS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--stage-infants", type=int, default=5, help="infants timed stage by stage")
    parser.add_argument("--out", type=Path, default=RESULTS / "synth.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()  # other processes' load, before the run
    stages = stage_times(args.stage_infants, args.minutes, args.fps)
    seconds, size = time_cohort(args.infants, args.minutes, args.fps, args.workers)
    print(f"{'stage (one core, per infant of ' + f'{args.minutes:g} min)':44s} {'ms':>8s}")
    for name, dt in stages.items():
        print(f"{name:44s} {1000 * dt:8.1f}")
    print(f"{'total':44s} {1000 * sum(stages.values()):8.1f}")
    print(f"\ngenerate_cohort: {args.infants} infants x {args.minutes:g} min at {args.fps:g} fps, "
          f"{args.workers} workers: {seconds:.1f} s ({args.infants / seconds:.1f} infants/s, "
          f"{size / 1e6:.0f} MB, {size / 1e6 / seconds:.0f} MB/s)")
    print(f"{os.cpu_count()} CPUs, load average before the run {load_before[0]:.2f}")
    result = {**common.environment(load_before), "benchmark": "synth", "jaxcp": __version__,
              "settings": {**vars(args), "out": str(args.out)},
              "results": {"seconds": seconds, "bytes": size, "infants_per_s": args.infants / seconds,
                          "stage_ms_per_infant": {k: 1000 * v for k, v in stages.items()}}}
    common.write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
