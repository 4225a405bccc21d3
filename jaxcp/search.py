"""`python -m jaxcp.search`: the architecture search (the main job), resumable after a kill.

    python -m jaxcp.search [--config quick|autocp|test|FILE] [--data DIR] [--out RUN_DIR] [--set KEY=VALUE]
    python -m jaxcp.search --resume RUN_DIR

With no arguments it runs the quick preset on a synthetic cohort generated under `data/synthetic/`.
The loop, the run folder and resuming are described in `jaxcp.nas.loop`: `--resume RUN_DIR` continues a
search from its last checkpoint with the settings it was started with, training no finished student again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jaxcp.core import atomic
from jaxcp.core.atomic import check_out_folder
from jaxcp.core.config import dump_yaml, from_dict, load_yaml, resolve_config_path
from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.progress import ProgressLog
from jaxcp.core.runtime import enable_compilation_cache, limit_malloc_arenas
from jaxcp.data.skeleton import load_layout
from jaxcp.data.synth import ensure_synthetic
from jaxcp.nas.config import SearchConfig, load_search_config
from jaxcp.nas.loop import Search
from jaxcp.nas.space import load_space
from jaxcp.nas.state import StudentRecord
from jaxcp.training.experiment import Experiment, load_experiment

SYNTHETIC_ROOT = Path("data") / "synthetic"  # where the default synthetic cohorts are generated


class SearchProgress:
    """The search's `SearchLog`: a progress bar over all students on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool, total_students: int):
        self.progress = ProgressLog(total_students, quiet=quiet, plain=sys.stdout)
        self.total, self.count, self.start = total_students, 0, time.perf_counter()

    def line(self, text: str) -> None:
        self.progress.line(text)

    def warn(self, text: str) -> None:
        self.progress.warn(text)

    def student(self, record: StudentRecord, index: int, count: int, best: float) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.count * max(self.total - self.count, 0)
        text = (f"iteration {record.iteration} student {index}/{count} (id {record.id}): "
                f"AUC {record.reward:.3f} [{record.status}], best so far {best:.3f}, "
                f"~{left / 60:.1f} min left")  # fmt: skip
        self.progress.update(self.count, text)

    def close(self) -> None:
        self.progress.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="jaxcp search", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--config", help="search preset name (configs/search/) or YAML path (default quick)")
    parser.add_argument("--data", help="processed dataset folder (default: a generated synthetic cohort)")
    parser.add_argument("--out", help="run directory (default: runs/search-<timestamp>)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue a search from its run directory, with the settings it was started with "
                             "(--config, --data, --out and --set cannot be combined with it)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. student.epochs=20 (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    return parser.parse_args(argv)


def resolve_run(args) -> tuple[SearchConfig, Path]:
    if args.resume:
        given = [name for name, value in (("--config", args.config), ("--data", args.data), ("--out", args.out),
                                          ("--set", args.set)) if value]  # fmt: skip
        if given:
            raise InputError(f"{given[0]} cannot be combined with --resume: a search continues with the settings "
                             f"in {Path(args.resume) / 'config.yaml'} (start a new search to change them)")
        run_dir = Path(args.resume)
        resolved = run_dir / "config.yaml"
        if not resolved.is_file():
            raise InputError(f"{run_dir}: not a search run directory (no config.yaml); a search killed before "
                             f"it started cannot be resumed: run the original command again")
        config = from_dict(SearchConfig, load_yaml(resolved), str(resolved))
        return config, run_dir
    name = args.config or "quick"
    resolve_config_path(name, "search")
    overrides = list(args.set) + ([f"data={args.data}"] if args.data else [])
    config = load_search_config(name, overrides)
    run_dir = check_out_folder(args.out or Path("runs") / time.strftime("search-%Y%m%d-%H%M%S"))
    if (run_dir / "config.yaml").exists():
        raise InputError(f"{run_dir}: already holds a search (use --resume {run_dir} to continue it)")
    return config, run_dir


def experiment_of(config: SearchConfig) -> Experiment:
    """The config's data (or its synthetic cohort, generated on first use) on device."""
    layout = load_layout(config.layout)
    data_dir = config.data or ensure_synthetic(config.synthetic, config.seed, layout, SYNTHETIC_ROOT)
    return load_experiment(data_dir, layout, config.student.student_config(), config.student.argmax_config(),
                           train_split=config.train_split, val_split=config.val_split)


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()  # before JAX starts its threads
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config, run_dir = resolve_run(args)
        space = load_space(resolve_config_path(config.space, "space"))
        experiment = experiment_of(config)
    except InputError as error:
        exit_with(error)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / "config.yaml", dump_yaml(config))
    enable_compilation_cache()
    log = SearchProgress(args.quiet, config.total_students)
    log.line(f"search: {config.iterations} iterations, {config.total_students} students, run directory {run_dir}")
    try:
        summary = Search(config, run_dir, experiment, space, log).run()
    except InputError as error:
        exit_with(error)
    finally:
        log.close()
    print_summary(summary, run_dir)
    return 0


def print_summary(summary: dict, run_dir: Path) -> None:
    print(f"\nsearch finished: {summary['students']} students, {summary['iterations']} iterations")
    if summary["argmax"]:
        print(f"{'iteration':>9} {'val AUC':>8} {'epoch':>6}  architecture")
        for a in summary["argmax"]:
            arch = a["arch"]
            text = f"{arch['conv']}, {arch['attention']}, init {arch['init_channels']}"
            print(f"{a['iteration']:>9} {a['reward']:>8.3f} {a['best_epoch']:>6}  {text}")
    best = summary["best"]
    if best is not None:
        print(f"best validation AUC {best['reward']:.3f}; architecture written to {run_dir / 'best.yaml'}")


if __name__ == "__main__":
    raise SystemExit(main())
