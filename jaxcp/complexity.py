"""`python -m jaxcp.complexity --arch FILE`: parameter and MAC counts of an architecture, as AutoCP reports them.

    python -m jaxcp.complexity --arch FILE [--frames 150] [--layout NAME|FILE] [--streams 4] [--json]
        [--no-xla] [--breakdown]

The counting rules are those of `jaxcp.model.counting` (thop 0.1.1 as AutoCP used it, plus XLA's FLOPs).
"""

from __future__ import annotations

import argparse
import json
import sys

from jaxcp.core.errors import InputError, exit_with
from jaxcp.data.skeleton import DEFAULT_LAYOUT, Layout, load_layout
from jaxcp.data.windows import WINDOW
from jaxcp.model.arch import Arch
from jaxcp.model.counting import breakdown, complexity, trace_counts
from jaxcp.nas.space import load_arch_file

DESCRIPTION = "Parameter and MAC counts of a candidate network, as AutoCP reports them, and XLA's FLOP estimate."

def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jaxcp complexity", description=DESCRIPTION)
    parser.add_argument("--arch", required=True, help="architecture file (YAML with arch: and hparams:)")
    parser.add_argument("--frames", type=int, default=WINDOW, help=f"frames per window (default {WINDOW})")
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
