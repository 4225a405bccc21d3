"""`python -m jaxcp.synth --out DIR`: write a synthetic infant cohort in the raw format.

    python -m jaxcp.synth --out DIR [--infants 100] [--minutes 3] [--cp-fraction 0.15] [--difficulty 0.1]
        [--seed 1234] [--fps 30] [--layout in-motion-29] [--workers N]

How the infants move, and how CP-like infants differ, is described in `jaxcp.data.synth`.
"""

from __future__ import annotations

import argparse
import time

from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.runtime import DEFAULT_SEED
from jaxcp.data.skeleton import BUILTIN_LAYOUTS, IN_MOTION_29, load_layout
from jaxcp.data.synth import (
    DEFAULT_CP_FRACTION,
    DEFAULT_DIFFICULTY,
    DEFAULT_FPS,
    DEFAULT_INFANTS,
    DEFAULT_MINUTES,
    generate_cohort,
)

DESCRIPTION = "A synthetic infant cohort written in the raw format (`orgcoords_<id>.csv` + `outcomes.csv`)."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jaxcp.synth", description=DESCRIPTION)
    parser.add_argument("--out", required=True, help="folder to write (replaced if it holds a cohort)")
    parser.add_argument("--infants", type=int, default=DEFAULT_INFANTS)
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="mean recording length")
    parser.add_argument("--cp-fraction", type=float, default=DEFAULT_CP_FRACTION)
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY,
                        help="0 = CP movements clearly different ... 1 = no difference")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate of every recording")
    parser.add_argument("--layout", default=IN_MOTION_29.name,
                        help=f"built-in layout ({', '.join(BUILTIN_LAYOUTS)}) or a layout YAML file")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        cohort = generate_cohort(
            args.out, layout=load_layout(args.layout), infants=args.infants, minutes=args.minutes,
            cp_fraction=args.cp_fraction, difficulty=args.difficulty, seed=args.seed, fps=args.fps,
            workers=args.workers)
    except InputError as error:
        exit_with(error)
    num_cp = sum(label for _, label in cohort)
    print(f"wrote {len(cohort)} infants ({num_cp} CP, {len(cohort) - num_cp} typical) at {args.fps:g} fps "
          f"to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
