"""`python -m jaxcp.export --checkpoint DIR --out FILE`: one self-contained inference file for a model.

The file format is described in `jaxcp.clinical.export`; `jaxcp predict --model FILE` runs it without
building the network from code.
"""

from __future__ import annotations

import argparse

from jaxcp.clinical.export import PLATFORMS, read_export, write_export
from jaxcp.clinical.inference import expand_checkpoints
from jaxcp.core.atomic import check_out_file
from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.runtime import enable_compilation_cache
from jaxcp.model.checkpoint import restore_model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="jaxcp export", description=__doc__.splitlines()[0].split(": ", 1)[1]
    )
    parser.add_argument(
        "--checkpoint", required=True, help="model checkpoint folder (or a run with one seed)"
    )
    parser.add_argument("--out", required=True, help="file to write, e.g. model.jaxcp")
    parser.add_argument(
        "--platforms",
        default=",".join(PLATFORMS),
        help="platforms to export for, comma-separated (default cpu,cuda)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_out_file(args.out)
        enable_compilation_cache()
        paths = expand_checkpoints([args.checkpoint])
        if len(paths) != 1:
            raise InputError(f"{args.checkpoint}: holds {len(paths)} models; export one, e.g. {paths[0]}")
        platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())
        if not platforms or any(p not in ("cpu", "cuda", "rocm", "tpu") for p in platforms):
            raise InputError(f"--platforms {args.platforms!r}: use cpu, cuda, rocm or tpu")
        restored = restore_model(paths[0])
        out = write_export(restored, args.out, platforms)
    except InputError as error:
        exit_with(error)
    meta, _ = read_export(out)
    spec = restored.spec
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB; {spec.layout.name}, window {spec.window}, "
        f"streams {spec.features.streams}; platforms {', '.join(meta['platforms'])})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
