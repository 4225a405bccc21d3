"""Parameter and MAC counts of a candidate network, as AutoCP reports them, and XLA's FLOP estimate.

`complexity(arch, layout)` builds the network, traces one batch-1 forward pass with `jax.eval_shape`
(nothing is allocated) and returns

- `params`: trainable parameters, edge importance (and Multi-GCN's alpha) included;
- `params_thop`, `macs_thop`: the counts of thop 0.1.1 as AutoCP used it (reference §8): parameters of
  convolutions, BatchNorm and linear layers only; MACs of convolutions, BatchNorm, adaptive average
  pooling and softmax; graph einsums, activations, attention products and residual adds count 0;
- `flops_xla`: XLA's cost analysis of the compiled batch-1 forward pass (0 with `xla=False`).

Command line: `python -m jaxcp.complexity --arch FILE [--frames 150] [--layout NAME|FILE] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

from jaxcp.errors import InputError, exit_with
from jaxcp.model import count_ops, create_model
from jaxcp.model.ops import OpCount
from jaxcp.skeleton import DEFAULT_LAYOUT, Layout, load_layout
from jaxcp.space import Arch, load_arch_file

UNCOUNTED_PARAMS = ("edge_importance", "alpha")  # owned by custom torch modules: thop skips them


def trace_counts(arch: Arch, layout: Layout | str, frames: int = 150, streams: int = 4,
                 in_channels: int = 4) -> tuple[dict, list[OpCount]]:
    """(variable shapes, thop op counts) of one batch-1 forward pass, without allocating anything."""
    if frames < 1 or streams < 1:
        raise InputError(f"frames and streams must be positive, got {frames} and {streams}")
    layout = load_layout(layout)
    model = create_model(arch, layout, streams=streams, in_channels=in_channels)
    x = jax.ShapeDtypeStruct((1, streams, frames, layout.num_joints, in_channels), jnp.float32)
    with count_ops() as records:
        variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return variables, records


def count_params(params, exclude: tuple[str, ...] = ()) -> int:
    """Number of parameters in a tree of arrays or shapes, leaving out leaves named in `exclude`."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = getattr(path[-1], "key", None)
        if name not in exclude:
            total += int(np.prod(leaf.shape))
    return total


def xla_flops(arch: Arch, layout: Layout | str, frames: int = 150, streams: int = 4,
              in_channels: int = 4, variables: dict | None = None) -> float:
    """XLA's FLOP estimate for the compiled batch-1 forward pass (evaluation mode)."""
    layout = load_layout(layout)
    model = create_model(arch, layout, streams=streams, in_channels=in_channels)
    if variables is None:
        variables, _ = trace_counts(arch, layout, frames, streams, in_channels)
    x = jax.ShapeDtypeStruct((1, streams, frames, layout.num_joints, in_channels), jnp.float32)
    compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", 0.0))


def complexity(arch: Arch, layout: Layout | str, frames: int = 150, streams: int = 4, *,
               in_channels: int = 4, xla: bool = True) -> dict:
    """{"params", "params_thop", "macs_thop", "flops_xla"} of a candidate for `frames`-frame windows."""
    variables, records = trace_counts(arch, layout, frames, streams, in_channels)
    flops = xla_flops(arch, layout, frames, streams, in_channels, variables) if xla else 0.0
    return {
        "params": count_params(variables["params"]),
        "params_thop": sum(r.params for r in records),
        "macs_thop": sum(r.macs for r in records),
        "flops_xla": flops,
    }


def breakdown(records: list[OpCount]) -> dict[str, tuple[int, int]]:
    """thop (MACs, params) per top-level part of the network (input streams, main blocks, classifier)."""
    parts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        part = parts[r.path.split("/")[0]]
        part[0] += r.macs
        part[1] += r.params
    return {name: (macs, params) for name, (macs, params) in parts.items()}


# --------------------------------------------------------------------------------------------------------
# Command line

def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jaxcp complexity", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True, help="architecture file (YAML with arch: and hparams:)")
    parser.add_argument("--frames", type=int, default=150, help="frames per window (default 150)")
    parser.add_argument("--layout", default=DEFAULT_LAYOUT, help="built-in layout name or layout YAML file")
    parser.add_argument("--streams", type=int, default=4, help="input feature streams (default 4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-xla", action="store_true", help="skip compiling for XLA's FLOP estimate")
    parser.add_argument("--breakdown", action="store_true", help="also list thop counts per network part")
    return parser.parse_args(argv)


def _report(path: str, arch: Arch, layout: Layout, args: argparse.Namespace, counts: dict) -> str:
    lines = [f"{path}: variant {arch.variant}, layout {layout.name}, {args.streams} streams x "
             f"{args.frames} frames, batch 1",
             f"  params (trainable, edge importance included)  {counts['params']:>15,}",
             f"  params (thop rules)                           {counts['params_thop']:>15,}",
             f"  MACs (thop rules)                             {counts['macs_thop']:>15,}"]
    if not args.no_xla:
        lines.append(f"  FLOPs (XLA cost analysis, forward)            {counts['flops_xla']:>15,.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        arch, _ = load_arch_file(args.arch)
        layout = load_layout(args.layout)
        counts = complexity(arch, layout, args.frames, args.streams, xla=not args.no_xla)
        parts = breakdown(trace_counts(arch, layout, args.frames, args.streams)[1]) if args.breakdown else {}
    except InputError as error:
        exit_with(error)
    if args.json:
        out = dict(counts, **({"breakdown": {k: {"macs": m, "params": p} for k, (m, p) in parts.items()}}
                              if parts else {}))
        print(json.dumps(out))
        return 0
    print(_report(args.arch, arch, layout, args, counts))
    for name, (macs, params) in parts.items():
        print(f"    {name:<12} MACs {macs:>15,}  params {params:>10,}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
