"""One short run that measures jaxcp on the device at hand: run it first whenever a GPU is lent.

    python benchmarks/gpu_suite.py                 # one GPU, at most about 8 minutes
    python benchmarks/gpu_suite.py --dry-run       # the same code on CPU at tiny sizes (a minute or two)
    python benchmarks/gpu_suite.py --search-vs-random   # then also the full search-vs-random benchmark (long)

Parts, in this order; each part starts only while the time budget (`--budget-s`, default 480) lasts, and a part
that does not start is recorded as skipped, so the JSON always says what was measured:

1. device: name, memory, JAX version; float32, TF32 and bfloat16 matrix-product GFLOP/s (the ceiling).
2. memory: temporaries per student of the paper's best architecture's training step (batch 32, 150 frames; XLA's
   memory analysis of the compiled step) for every `remat` setting and both formulations, and how many students
   of that size fit in the device's memory.
3. throughput: compile seconds of the training step, training windows/s for 1, 4, 8 and 16 vmapped students (the
   largest that fit; a count that does not fit with `remat: none` runs with `remat: full`), inference windows/s.
4. student: one paper-scale student end to end (the synthetic cohort at paper size: 420 infants of 3 minutes, AutoCP's
   50-epoch schedule, early stopping off), in seconds, split into data, compilation, training and validation.
5. search: the quick search preset in a fresh process with an empty compilation cache, in seconds.

Targets it reports against: the paper-scale student in under 60 s on one H100/H200-class GPU, and 8 vmapped students
of the best architecture at least 5x the training throughput of one. `--dry-run` shrinks every size (a small
architecture, batch 4, 30 frames, a 16-infant cohort, one epoch, the test search preset, two memory rows: compiling
dominates on CPU, so the dry run compiles only what covers every part) so that CI checks the script on CPU.
Writes gpu_suite_<backend>[_dry].json and .md under `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmark scripts, run as a script or imported

import common  # noqa: E402
import search as search_bench  # noqa: E402
import student as student_bench  # noqa: E402
import train_step  # noqa: E402

from jaxcp.core.atomic import write_text  # noqa: E402
from jaxcp.model.options import FORMULATIONS, REMATS, ModelOptions  # noqa: E402
from jaxcp.nas.space import load_arch_file  # noqa: E402
from jaxcp.training import engine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEST_ARCH = ROOT / "configs" / "arch" / "autocp_best.yaml"
TARGET_STUDENT_S = 60.0
TARGET_SPEEDUP_8 = 5.0


@dataclasses.dataclass(frozen=True)
class Size:
    """Every size the suite uses (the full run's or the dry run's)."""

    batch: int = 32
    window: int = 150
    students: tuple[int, ...] = (1, 4, 8, 16)
    steps: int = 3
    repeats: int = 3
    eval_batch: int = 256
    infants: int = 420
    minutes: float = 3.0
    epochs: int = 50
    eval_every: int = 5
    parts: tuple[int, int] = (30, 5)
    search_config: str = "quick"
    search_overrides: tuple[str, ...] = ()
    matmul_n: int = 4096
    small_arch: bool = False
    memory_grid: tuple[tuple[str, str], ...] = tuple((f, r) for f in FORMULATIONS[1:] for r in REMATS)


FULL = Size()
DRY = Size(batch=4, window=30, students=(1, 2), steps=1, repeats=1, eval_batch=8, infants=16, minutes=0.5,
           epochs=1, eval_every=1, parts=(4, 2), search_config=str(ROOT / "configs" / "search" / "test.yaml"),
           search_overrides=("iterations=1", "first_students=1", "students=1", "student.epochs=1"),
           matmul_n=256, small_arch=True, memory_grid=(("matmul", "none"), ("matmul", "full")))  # one compile each


def suite_arch(size: Size):
    """The paper's best architecture and its training settings (a dry run: one block of one layer per stream, basic
    temporal layers, 8 channels: the same code, compiled in seconds)."""
    arch, hparams = load_arch_file(BEST_ARCH)
    if size.small_arch:
        arch = dataclasses.replace(arch, init_channels=8, blocks_in=1, depth_in=1, blocks_main=1, depth_main=1,
                                   conv="basic")
    return arch, dataclasses.replace(hparams, batch_size=size.batch)


def program_spec(arch, size: Size, options: ModelOptions) -> engine.ProgramSpec:
    return train_step.make_spec(arch, size.batch, size.window, size.eval_batch, options)


def device_part(size: Size) -> dict:
    device = jax.devices()[0]
    return {"device": getattr(device, "device_kind", str(device)), "platform": device.platform,
            "device_count": jax.device_count(), "memory_bytes": train_step.device_memory(),
            "matmul_gflops": {p: train_step.matmul_gflops(size.matmul_n, p) for p in ("float32", "tf32", "bfloat16")}}


def memory_part(size: Size) -> dict:
    """Temporaries per student for each (formulation, remat) of the grid (one student; compile only)."""
    arch, hparams = suite_arch(size)
    memory, rows = train_step.device_memory(), []
    for formulation, remat in size.memory_grid:
        spec = program_spec(arch, size, ModelOptions(formulation=formulation, remat=remat))
        rows.append(train_step.with_fit(train_step.training_memory(spec, hparams, 1), memory))
    return {"rows": rows}


def throughput_part(size: Size, deadline: float) -> dict:
    """Training windows/s for each student count (remat none, or full where none does not fit), inference w/s."""
    arch, hparams = suite_arch(size)
    rows = []
    for count in size.students:
        if time.perf_counter() > deadline:
            rows.append({"students": count, "skipped": "time budget spent"})
            continue
        for remat in ("none", "full"):
            row = train_step.bench_students(program_spec(arch, size, ModelOptions(remat=remat)), hparams, count,
                                            size.steps, 2 * size.eval_batch, size.repeats)
            if "skipped" not in row:
                break
        rows.append(row)
    one = next((r for r in rows if r["students"] == 1 and "train_windows_per_s" in r), None)
    for row in rows:
        if one and "train_windows_per_s" in row:
            row["speedup_over_one"] = row["train_windows_per_s"] / one["train_windows_per_s"]
    return {"rows": rows}


def student_part(size: Size) -> dict:
    args = argparse.Namespace(arch=str(BEST_ARCH), epochs=size.epochs, eval_every=size.eval_every,
                              infants=size.infants, minutes=size.minutes, parts_positive=size.parts[0],
                              parts_negative=size.parts[1], seed=0, window=size.window, remat="none")
    folder = Path(tempfile.mkdtemp(prefix="jaxcp-gpu-suite-student-"))
    try:
        row = student_bench.run_student(args, folder, suite_arch(size))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds = row["seconds"]
    row["student_s"] = seconds["student total (compile + train + validate + host)"]
    return row


def search_part(size: Size) -> dict:
    with tempfile.TemporaryDirectory(prefix="jaxcp-gpu-suite-search-") as folder:
        return search_bench.run_search(size.search_config, list(size.search_overrides), Path(folder))


PARTS = {"device": device_part, "memory": memory_part, "throughput": throughput_part, "student": student_part,
         "search": search_part}


def run_suite(size: Size, budget_s: float, only: list[str]) -> dict:
    """Run the parts in order while the budget lasts; every part's seconds (or why it was skipped) recorded."""
    start = time.perf_counter()
    deadline = start + budget_s
    results: dict = {}
    for name, part in PARTS.items():
        if name not in only:
            continue
        if time.perf_counter() > deadline:
            results[name] = {"skipped": f"time budget of {budget_s:.0f} s spent"}
            print(f"{name}: skipped (budget spent)", flush=True)
            continue
        t0 = time.perf_counter()
        out = part(size, deadline) if name == "throughput" else part(size)
        results[name] = {**out, "part_s": time.perf_counter() - t0}
        print(f"{name}: done in {results[name]['part_s']:.1f} s", flush=True)
    results["total_s"] = time.perf_counter() - start
    results["targets"] = targets(results)
    return results


def targets(results: dict) -> dict:
    """The suite's two targets, with the measured value and whether it was met (None: not measured)."""
    student = results.get("student", {}).get("student_s")
    eight = next((r.get("speedup_over_one") for r in results.get("throughput", {}).get("rows", [])
                  if r.get("students") == 8), None)
    return {"paper_student_under_60_s": {"measured_s": student,
                                         "met": None if student is None else student < TARGET_STUDENT_S},
            "eight_students_5x_one": {"measured_speedup": eight,
                                      "met": None if eight is None else eight >= TARGET_SPEEDUP_8}}


def markdown(result: dict) -> str:
    """The README-ready tables of a suite result."""
    r, gb = result["results"], train_step.GB
    dev = r.get("device", {})
    lines = [f"GPU suite on {dev.get('device', '?')} ({dev.get('platform', '?')}, "
             f"{(dev.get('memory_bytes') or 0) / gb:.0f} GB), jax {result['jax']}, "
             f"{'dry run' if result['dry_run'] else 'full run'}, {r['total_s']:.0f} s in all, git {result['git']}", ""]
    if "matmul_gflops" in dev:
        lines.append("Matrix product GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in dev["matmul_gflops"].items()))
        lines.append("")
    if "rows" in r.get("memory", {}):
        lines += ["| formulation | remat | temporaries per student (GB) | students that fit | compile s |",
                  "|---|---|---|---|---|"]
        for row in r["memory"]["rows"]:
            per = row.get("temp_bytes_per_student")
            lines.append(f"| {row['formulation']} | {row['remat']} | {per / gb if per else float('nan'):.2f} | "
                         f"{row.get('students_fit')} | {row['compile_epoch_s']:.1f} |")
        lines.append("")
    if "rows" in r.get("throughput", {}):
        lines += ["| students | remat | compile s (step) | training windows/s | x one | inference windows/s |",
                  "|---|---|---|---|---|---|"]
        for row in r["throughput"]["rows"]:
            if "train_windows_per_s" not in row:
                lines.append(f"| {row['students']} | | | skipped: {row.get('skipped')} | | |")
                continue
            lines.append(f"| {row['students']} | {row['remat']} | {row['compile_epoch_s']:.1f} | "
                         f"{row['train_windows_per_s']:.1f} | {row.get('speedup_over_one', float('nan')):.2f} | "
                         f"{row['infer_windows_per_s']:.1f} |")
        lines.append("")
    for name in ("student", "search"):
        part = r.get(name, {})
        if "skipped" in part:
            lines.append(f"{name}: skipped ({part['skipped']})")
    if "student_s" in r.get("student", {}):
        s = r["student"]
        lines.append(f"Paper-scale student: {s['train_infants']} train / {s['val_infants']} val infants, "
                     f"{s['epochs_run']} epochs: {s['student_s']:.1f} s ("
                     + ", ".join(f"{k} {v:.1f} s" for k, v in s["seconds"].items()) + ")")
    if "seconds_total" in r.get("search", {}):
        s = r["search"]
        lines.append(f"Search ({Path(result['size']['search_config']).stem}): {s['students']} + "
                     f"{s['argmax_students']} students in {s['seconds_search']:.0f} s after {s['seconds_data']:.0f} s "
                     f"of data, {s['students_per_hour']:.0f} students/hour")
    for name, t in r["targets"].items():
        lines.append(f"Target {name}: {t}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, for a CPU check of the script")
    parser.add_argument("--budget-s", type=float, default=480.0, help="start no part after this many seconds")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--out", default=str(train_step.RESULTS), help="folder for the JSON and Markdown")
    parser.add_argument("--search-vs-random", action="store_true",
                        help="afterwards run benchmarks/search_vs_random.py at full size (--smoke with --dry-run)")
    args = parser.parse_args(argv)
    only = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    size = DRY if args.dry_run else FULL
    load_before = os.getloadavg()
    results = run_suite(size, args.budget_s, only)
    result = {**common.environment(load_before), "dry_run": args.dry_run,
              "size": dataclasses.asdict(size), "results": results}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_suite_{jax.default_backend()}{'_dry' if args.dry_run else ''}"
    text = markdown(result)
    write_text(out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_text(out / f"{stem}.md", text)
    print(text)
    if args.search_vs_random:
        argv = [sys.executable, str(Path(__file__).resolve().parent / "search_vs_random.py"),
                "--out", str(out / "search_vs_random")] + (["--smoke"] if args.dry_run else [])
        return subprocess.run(argv, check=False).returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
