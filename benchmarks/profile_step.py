"""Where the time of one training step goes: XLA ops and network modules, from a JAX profiler trace.

    python benchmarks/profile_step.py [--arch configs/arch/autocp_best.yaml] [--batch 32] [--window 150] [--top 25]

Compiles forward + backward of the network (train mode, cross-entropy loss) for one batch of random
features, runs it once to warm up, then once under `jax.profiler.trace` with XLA:CPU's per-op trace events
(`--xla_cpu_enable_xprof_traceme=true`, set here before JAX starts). Prints the slowest HLO ops with their
shapes and the layer they come from, then op time summed per module (stem, blocks, graph / temporal /
attention layers; "bwd" marks the backward pass). Op times are summed over threads, so they add up to
more than the wall time on several cores; "matmul (no module)" are fused matrix products, whose HLO
carries no layer name. This is the profile the README's speed notes are based on.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()

import argparse  # noqa: E402
import collections  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxcp.data.features import STREAM_ORDER, FeatureConfig  # noqa: E402
from jaxcp.model.network import create_model  # noqa: E402
from jaxcp.nas.space import load_arch_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SKIP = ("ThunkExecutor", "$", "end:", "Slinky", "Pjit", "Common", "Allocate", "Handle", "Parse", "Python",
        "Wait", "Threadpool")
MODULE = re.compile(r"(init_bn|stem_gcn|stem_tcn|block\d+/gcn|block\d+/tcn\d+|block\d+/att|main\d+/gcn|"
                    r"main\d+/tcn\d+|main\d+/att|classifier)")


def op_times(compiled, args) -> dict[str, float]:
    """Microseconds per HLO op name of one traced call."""
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            jax.block_until_ready(compiled(*args))
        trace = glob.glob(f"{folder}/plugins/profile/*/perfetto_trace.json.gz")[0]
        events = json.load(gzip.open(trace))["traceEvents"]
    times: dict[str, float] = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and not event["name"].startswith(SKIP):
            times[event["name"]] += event.get("dur", 0)
    return times


def hlo_lines(text: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name -> (result shape, op_name metadata)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
        if m:
            meta = re.search(r'op_name="([^"]+)"', line)
            out[m.group(1)] = (m.group(2), meta.group(1) if meta else "")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=str(ROOT / "configs" / "arch" / "autocp_best.yaml"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=150)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    arch, _ = load_arch_file(args.arch)
    model = create_model(arch, "in-motion-29", FeatureConfig(streams=STREAM_ORDER[: args.streams]))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(args.batch, args.streams, args.window, 29, 4)),
                    jnp.float32)
    labels = jnp.asarray(np.arange(args.batch) % 2)
    variables = model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, x, train=False)

    def loss(params, batch_stats, x):
        logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                      mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(2)})
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)), updates

    step_args = (variables["params"], variables["batch_stats"], x)
    start = time.perf_counter()
    compiled = jax.jit(jax.grad(loss, has_aux=True)).lower(*step_args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*step_args))
    start = time.perf_counter()
    jax.block_until_ready(compiled(*step_args))
    wall = time.perf_counter() - start
    times = op_times(compiled, step_args)
    lines = hlo_lines(compiled.as_text())
    total = sum(times.values())
    print(f"{Path(args.arch).name}, batch {args.batch}, {args.window} frames, {jax.devices()[0].device_kind}: "
          f"compile {compile_s:.1f} s, forward + backward {wall:.2f} s wall, {total / 1e6:.2f} s of op time")
    print(f"\nslowest {args.top} ops (ms, shape, layer)")
    for name, us in sorted(times.items(), key=lambda kv: -kv[1])[: args.top]:
        shape, meta = lines.get(name, ("", ""))
        print(f"{us / 1e3:9.1f}  {name:30.30s} {shape:36.36s} {meta[-60:]}")
    modules: dict[str, float] = collections.Counter()
    for name, us in times.items():
        meta = lines.get(name, ("", ""))[1]
        m = MODULE.search(meta)
        key = (m.group(1) if m else ("matmul (no module)" if name.startswith("ynn") else "other"))
        modules[key + (" bwd" if "transpose(" in meta else "")] += us
    print("\nop time per module (ms)")
    for key, us in modules.most_common():
        print(f"{us / 1e3:9.1f}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
