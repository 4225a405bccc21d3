"""`python -m jaxcp.search`: the architecture search (the main job), resumable after a kill.

    python -m jaxcp.search [--config quick|autocp|test|FILE] [--data DIR] [--out RUN_DIR] [--set KEY=VALUE]
    python -m jaxcp.search --resume RUN_DIR
    python -m jaxcp.search --distributed --out RUN_DIR ...      # one of the processes of a SLURM / MPI job
    python -m jaxcp.search --coordinator HOST:PORT --num-processes N --process-id I --out RUN_DIR ...

With no arguments it runs the quick preset on a synthetic cohort generated under `data/synthetic/`.
With `--data DIR` the search uses the data's own skeleton layout (its manifest) unless the config or
`--set layout=...` names one. It warns when a split has few infants of a class, and ends with the best
candidate's result on the held-out `test_split` next to the (optimistic) best validation AUC.
The loop, the run folder and resuming are described in `jaxcp.nas.loop`: `--resume RUN_DIR` continues a
search from its last checkpoint with the settings it was started with, training no finished student again.
With many processes (`jaxcp.core.distributed`) every process runs the same command and search; each trains
its share of the students, and process 0 writes the run folder (README: "Many hosts: `--distributed`").
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from jaxcp.core import atomic
from jaxcp.core.atomic import check_out_folder
from jaxcp.core.config import dump_yaml, from_dict, load_yaml, resolve_config_path
from jaxcp.core.distributed import DEFAULT_HEARTBEAT, Cluster, initialize
from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.progress import ProgressLog
from jaxcp.core.runtime import enable_compilation_cache, limit_malloc_arenas
from jaxcp.data.dataset import Dataset, dataset_layout
from jaxcp.data.skeleton import Layout, load_layout
from jaxcp.data.splits import size_warning
from jaxcp.data.synth import ensure_synthetic
from jaxcp.nas.config import SearchConfig, load_search_config
from jaxcp.nas.heldout import describe_best, describe_held_out, split_scorer
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
    many = parser.add_argument_group("many processes (every process runs the same command; --out or --resume "
                                     "must name the same folder for all)")  # fmt: skip
    many.add_argument("--distributed", action="store_true",
                      help="one process of a job started by SLURM (srun) or Open MPI (mpirun): jax.distributed "
                           "detects the coordinator, the process count and this process's id")
    many.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, to set the job by hand")
    many.add_argument("--num-processes", type=int, metavar="N", help="the number of processes (by hand)")
    many.add_argument("--process-id", type=int, metavar="I", help="this process, 0 to N-1 (by hand)")
    many.add_argument("--heartbeat-timeout", type=int, default=DEFAULT_HEARTBEAT, metavar="SECONDS",
                      help=f"a process silent for half of this is taken as dead and the job stops "
                           f"(default {DEFAULT_HEARTBEAT})")
    return parser.parse_args(argv)


def connect(args) -> Cluster:
    """This process's place in the job: alone unless --distributed or --coordinator say otherwise."""
    many = args.distributed or any(v is not None for v in (args.coordinator, args.num_processes, args.process_id))
    if many and not (args.out or args.resume):
        raise InputError("--out RUN_DIR (or --resume RUN_DIR) is required with many processes: every process "
                         "must name the same run folder")  # fmt: skip
    return initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed,
                      heartbeat_timeout=args.heartbeat_timeout)  # fmt: skip


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


def search_data(config: SearchConfig) -> tuple[Path, Layout]:
    """The data folder (the synthetic cohort generated on first use when none is given) and its layout:
    the config's `layout` when it names one, else the data's own (from its manifest)."""
    if config.data is None:
        layout = load_layout(config.layout)  # None: the default layout
        return ensure_synthetic(config.synthetic, config.seed, layout, SYNTHETIC_ROOT), layout
    data_dir = Path(config.data)
    if not data_dir.exists():
        raise InputError(f"{data_dir}: data folder not found")
    return data_dir, load_layout(config.layout) if config.layout else dataset_layout(data_dir)


def experiment_of(config: SearchConfig, data_dir: Path, layout: Layout) -> Experiment:
    """The config's train and validation splits on device."""
    return load_experiment(data_dir, layout, config.student.student_config(), config.student.argmax_config(),
                           train_split=config.train_split, val_split=config.val_split, folds=config.student.folds)


def split_warnings(experiment: Experiment) -> list[str]:
    """A `size_warning` line for each of the train and validation splits that has few infants of a class."""
    splits: tuple[tuple[str, Dataset], ...] = (("train", experiment.train_set), ("validation", experiment.val_set))
    warnings = []
    for name, dataset in splits:
        positive = int(dataset.labels.sum())
        warning = size_warning(f"the {name} split", positive, dataset.num_infants - positive)
        if warning:
            warnings.append(warning)
    return warnings


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()  # before JAX starts its threads
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cluster = connect(args)  # before anything else uses JAX
    except InputError as error:
        exit_with(error)
    try:
        code = run_search(args, cluster)
    except SystemExit as stop:  # an InputError's exit (2): the other processes are told, not left waiting
        cluster.close(stop.code if isinstance(stop.code, int) else 1)
        raise
    except BaseException:
        if cluster.process_count > 1:
            traceback.print_exc()
        cluster.close(1)
        raise
    cluster.close(code)
    return code


def run_search(args, cluster: Cluster) -> int:
    try:
        config, run_dir = resolve_run(args)
        space = load_space(resolve_config_path(config.space, "space"))
        with cluster.writer_first():  # process 0 generates the synthetic cohort; the others find it
            data_dir, layout = search_data(config)
        experiment = experiment_of(config, data_dir, layout)
        held_out = split_scorer(data_dir, config.test_split, config.val_split)
    except InputError as error:
        exit_with(error)
    cluster.advice = f"fix the cause and start the whole job again with --resume {run_dir}"
    cluster.barrier()  # every process checked the run folder before process 0 writes into it
    run_dir.mkdir(parents=True, exist_ok=True)
    if cluster.is_writer:
        atomic.write_text(run_dir / "config.yaml", dump_yaml(config))
    enable_compilation_cache()
    log = SearchProgress(args.quiet, config.total_students)
    log.line(f"search: {config.iterations} iterations, {config.total_students} students, run directory {run_dir}; "
             f"data {data_dir} (layout {layout.name})")
    if cluster.process_count > 1:
        log.line(f"process {cluster.process_index} of {cluster.process_count}; process 0 writes the run directory")
    for warning in split_warnings(experiment):
        log.warn(warning)
    try:
        summary = Search(config, run_dir, experiment, space, log, held_out, cluster).run()
    except InputError as error:
        exit_with(error)
    finally:
        log.close()
    if cluster.is_writer:
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
        print(f"{describe_best(best)}; architecture written to {run_dir / 'best.yaml'}")
    if summary.get("held_out") is not None:
        print("\n".join(describe_held_out(summary["held_out"])))


if __name__ == "__main__":
    raise SystemExit(main())
