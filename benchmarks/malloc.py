"""What glibc's malloc settings do to jaxcp's training step on CPU: page faults, system time, wall time, memory.

    python benchmarks/malloc.py [--arch configs/arch/autocp_best.yaml] [--batch 32] [--window 150] [--steps 3]
        [--settings system,hugetlb,retain] [--tag TAG]

XLA:CPU allocates the temporaries of a compiled program (GBs for a training step at batch 32 and 150 frames)
for every call, and glibc maps blocks that large fresh from the kernel each time, which faults them in page by
page. For each setting, one subprocess of this script (`--child`) with that GLIBC_TUNABLES compiles the
engine's training and predict programs for one student (as `vs_pytorch.py` does), runs each once to warm
up, then `--steps` training calls and as many predict calls; per call it records wall seconds and the
process's user and system CPU seconds and minor page faults (getrusage), and at the end its peak RSS
(VmHWM). Settings (`SETTINGS`):

- `system`: glibc's defaults (GLIBC_TUNABLES unset; JAXCP_SYSTEM_MALLOC=1 keeps jaxcp from setting it);
- `hugetlb`: `glibc.malloc.hugetlb=1` (glibc >= 2.35), transparent huge pages for the blocks malloc maps
  (fewer, larger page faults);
- `retain`: no mapped blocks, no trimming, one arena: freed memory stays in the process and is reused, so a
  step faults nothing in, at the price of memory that is not given back before the process ends: what
  jaxcp's commands run with by default (`jaxcp.core.runtime.MALLOC_SETTINGS`; JAXCP_MALLOC=hugepages
  is `hugetlb`).

Medians over the calls. Writes benchmarks/results/malloc_cpu[_TAG].json and a Markdown table malloc_cpu[_TAG].md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

from jaxcp.core.runtime import MALLOC_SETTINGS

ROOT = common.ROOT
SETTINGS = {
    "system": None,
    "hugetlb": MALLOC_SETTINGS["hugepages"],
    "retain": MALLOC_SETTINGS["retain"],
}
HYPER = {"optimizers": "adam", "lr": 0.005, "weight_decay": 0.0, "momentum": 0.99}


def measured(fn) -> dict:
    """Wall, user, system seconds and minor page faults of one call of `fn`."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": wall, "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
            "minor_faults": after.ru_minflt - before.ru_minflt}


def child(args: argparse.Namespace) -> dict:
    """One setting: this process's environment already has it."""
    import vs_pytorch

    from jaxcp.nas.space import load_arch_file

    arch, _ = load_arch_file(args.arch)
    features, _ = vs_pytorch.batch_data(args.batch, args.window)
    train, infer, facts = vs_pytorch.jaxcp_side(arch, HYPER, features)
    train(), infer()
    calls = {name: [measured(fn) for _ in range(args.steps)] for name, fn in (("train", train), ("infer", infer))}
    row = {"glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "peak_rss_bytes": vs_pytorch.peak_rss(),
           "compile_train_step_s": facts["compile_train_step_s"]}
    for name, runs in calls.items():
        for key in runs[0]:
            row[f"{name}_{key}"] = statistics.median(run[key] for run in runs)
        row[f"{name}_windows_per_s"] = args.batch / row[f"{name}_wall_s"]
        row[f"{name}_calls"] = runs
    return row


def run_setting(args: argparse.Namespace, name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["JAXCP_SYSTEM_MALLOC"] = "1"
    if SETTINGS[name]:
        env["GLIBC_TUNABLES"] = SETTINGS[name]
    command = [sys.executable, __file__, "--child", "--arch", args.arch, "--batch", str(args.batch),
               "--window", str(args.window), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"malloc.py: setting {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return {"setting": name, **json.loads(lines[-1])}


def markdown(rows: list[dict]) -> str:
    lines = ["| malloc | training step s (wall) | system s | minor faults | inference s (wall) | peak RSS GB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['train_wall_s']:.2f} | {r['train_sys_s']:.2f} | "
                     f"{r['train_minor_faults']:,} | {r['infer_wall_s']:.2f} | {r['peak_rss_bytes'] / 1e9:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=str(ROOT / "configs" / "arch" / "autocp_best.yaml"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=150)
    parser.add_argument("--steps", type=int, default=3, help="timed calls of each program (default 3)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated, of " + ",".join(SETTINGS))
    parser.add_argument("--tag", default="")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return 0
    if not sys.platform.startswith("linux"):
        print("malloc.py: glibc settings, Linux only; nothing measured")
        return 0
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown} (of {list(SETTINGS)})")
    load_before = os.getloadavg()
    rows = []
    for name in names:
        rows.append(run_setting(args, name))
        print(markdown(rows).splitlines()[-1], flush=True)
    suffix = f"_{args.tag}" if args.tag else ""
    result = {**common.environment(load_before), "arch": Path(args.arch).name, "batch": args.batch,
              "window": args.window, "steps": args.steps, "rows": rows}
    common.write_json(common.RESULTS / f"malloc_cpu{suffix}.json", result)
    common.write_text(common.RESULTS / f"malloc_cpu{suffix}.md", markdown(rows))
    print(markdown(rows), end="")
    print(f"wrote {common.RESULTS / f'malloc_cpu{suffix}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
