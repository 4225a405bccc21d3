"""`python -m jaxcp.prepare RAW_DIR OUT_DIR`: raw recordings -> a processed, split dataset.

RAW_DIR holds `orgcoords_<id>.csv` or `<id>.npy` recordings (also in RAW_DIR/coords) and `outcomes.csv`
(in RAW_DIR or RAW_DIR/outcomes). Every labelled recording is read, preprocessed (`jaxcp.data.preprocess`)
and assigned to train/val/test (`jaxcp.data.splits`); OUT_DIR gets jaxcp's processed format
(`jaxcp.data.dataset`). OUT_DIR is built in a temporary sibling and renamed into place at the end, so it
is either untouched or complete; an existing OUT_DIR is only replaced when it is a jaxcp dataset.

Bad input stops the run with one line naming the file and the problem (exit status 2). Recordings without
an outcome and recordings with too many long gaps are skipped with a warning and listed in the manifest.
The summary ends with the data check (`jaxcp.data.quality`): how many recordings were flagged, the worst
ones, and hints such as `--y-up`; splits with too few infants of a class are marked and warned about.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from jaxcp.core.config import dump_yaml
from jaxcp.core.errors import InputError, exit_with
from jaxcp.data.dataset import Manifest
from jaxcp.data.io import DEFAULT_FPS, check_fps
from jaxcp.data.prepare import MAX_WORKERS, PrepareConfig, build_config, prepare_dataset
from jaxcp.data.quality import summary_lines
from jaxcp.data.skeleton import load_layout
from jaxcp.data.splits import MIN_PER_CLASS, size_warning


def format_summary(manifest: Manifest, out_dir: str | Path, seconds: float) -> str:
    """A table of infants per split and class with minutes of recording (splits too small for honest
    metrics marked *), then fixed splits, missing data, skips and the data check."""
    lines = [f"wrote {out_dir} in {seconds:.1f} s (layout {manifest.layout_name}, {manifest.fps:g} Hz)",
             f"{'split':<7}{'infants':>8}{'CP':>6}{'non-CP':>8}{'minutes':>9}"]
    small = False
    for name in (*manifest.splits, "total"):
        rows = [e for e in manifest.infants if name in (e.split, "total")]
        cp = sum(e.label for e in rows)
        minutes = sum(e.length for e in rows) / manifest.fps / 60
        mark = "  *" if name != "total" and size_warning(name, cp, len(rows) - cp) else ""
        small = small or bool(mark)
        lines.append(f"{name:<7}{len(rows):>8}{cp:>6}{len(rows) - cp:>8}{minutes:>9.1f}{mark}")
    if small:
        lines.append(f"* fewer than {MIN_PER_CLASS} infants of a class: metrics on this split are very "
                     f"uncertain (see the warning)")
    fixed = manifest.settings.get("fixed_split", {})
    for name, spec in fixed.items():
        lines.append(f"{name} split fixed by {spec['file']} ({len(spec['ids'])} ids)")
    raw = sum(e.raw_frames for e in manifest.infants)
    missing = sum(e.missing_fraction * e.raw_frames for e in manifest.infants) / raw
    long_gaps = sum(e.long_gap_fraction * e.raw_frames for e in manifest.infants) / raw
    num_long = sum(e.num_long_gaps for e in manifest.infants)
    max_gap = manifest.settings["preprocess"]["max_gap_s"]
    lines.append(f"missing data: {100 * missing:.2f}% of raw joint-frames; {100 * long_gaps:.2f}% in "
                 f"{num_long} gaps longer than {max_gap:g} s (interpolated as well)")
    if manifest.skipped:
        reasons = sorted({s["reason"] for s in manifest.skipped})
        counts = ", ".join(f"{sum(s['reason'] == r for s in manifest.skipped)} {r}" for r in reasons)
        lines.append(f"skipped {len(manifest.skipped)} recordings ({counts})")
    if manifest.quality:
        lines.append(summary_lines(manifest.quality))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = "\n".join(f"  {line}" for line in dump_yaml(PrepareConfig()).splitlines())
    parser = argparse.ArgumentParser(
        prog="jaxcp prepare",
        description="Turn raw recordings (orgcoords_<id>.csv or <id>.npy, and outcomes.csv) into a "
        "processed, split dataset.",
        epilog=f"settings (--set key=value, or a --config YAML file) and their defaults:\n{settings}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("raw_dir", help="folder of orgcoords_<id>.csv / <id>.npy files and outcomes.csv")
    parser.add_argument("out_dir", help="processed dataset to write (replaced atomically if it is one)")
    parser.add_argument("--layout", default=None, help="built-in layout name or layout YAML (in-motion-29)")
    parser.add_argument("--fps", default=str(DEFAULT_FPS), help="frame rate of the raw recordings (30)")
    parser.add_argument("--config", default=None, help="YAML file with the settings below")
    parser.add_argument("--y-up", action="store_true",
                        help="the raw y axis points up (not down as in images): same as "
                        "--set preprocess.y_up=true")
    parser.add_argument("--test-ids", default=None, metavar="FILE",
                        help="these infants (one id a line, # comments) form the test split exactly")
    parser.add_argument("--val-ids", default=None, metavar="FILE",
                        help="these infants form the validation split exactly")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"processes reading the recordings (default: CPU count, at most {MAX_WORKERS})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="a setting, e.g. preprocess.trunk_multiple=4 or split.seed=7 (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        fps = check_fps(args.fps)
        overrides = [*args.overrides, *(["preprocess.y_up=true"] if args.y_up else [])]
        config = build_config(args.config, overrides)
        layout = load_layout(args.layout)
        workers = min(os.cpu_count() or 1, MAX_WORKERS) if args.workers is None else args.workers
        manifest = prepare_dataset(args.raw_dir, args.out_dir, layout=layout, fps=fps, config=config,
                                   workers=workers, test_ids=args.test_ids, val_ids=args.val_ids)
    except InputError as error:
        exit_with(error)
    print(format_summary(manifest, args.out_dir, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
