"""How hard the synthetic cohort is: the subject-level AUC a trained model reaches at each `difficulty`.

    python benchmarks/difficulty.py [--difficulties 0,0.1,0.15,0.25,0.5] [--infants 150] [--minutes 1] [--epochs 24]
                                    [--arch configs/arch/quick_best.yaml] [--streams V] [--seeds 2]

For each difficulty: generate a cohort (`jaxcp.synth`, seed 1234), prepare it (`jaxcp.prepare`: splits
of about 57/21/21 %), train `--seeds` students of the architecture on the training split (3 s windows,
validation every 4 epochs, best-validation model kept), and score the held-out test split with the
best-validation model of each seed. Reports validation and test subject-level AUC per seed, so the
default `difficulty` can be checked against the target of the synthetic-cohort issue (a trained model
reaches a high but not perfect AUC, about 0.85 to 0.95).

Prints a table and writes benchmarks/results/difficulty.json (machine, versions, settings).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

from jaxcp.core.atomic import write_text
from jaxcp.data import synth
from jaxcp.data.dataset import load_dataset
from jaxcp.data.features import FeatureConfig
from jaxcp.data.prepare import prepare_dataset
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.nas.space import load_arch_file
from jaxcp.training import engine, students

ROOT = Path(__file__).resolve().parents[1]
RESULTS = common.RESULTS


def run_one(difficulty: float, args, folder: Path) -> dict:
    start = time.perf_counter()
    raw, processed = folder / f"raw_{difficulty}", folder / f"processed_{difficulty}"
    synth.generate_cohort(raw, layout=IN_MOTION_29, infants=args.infants, minutes=args.minutes,
                          difficulty=difficulty, seed=args.seed)  # fmt: skip
    prepare_dataset(raw, processed, layout=IN_MOTION_29, seed=args.seed)
    seconds_data = time.perf_counter() - start
    arch, hparams = load_arch_file(args.arch)
    config = students.TrainConfig(epochs=args.epochs, eval_every=4, early_stop=False, window=90, hop=45,
                               parts_positive=8, parts_negative=3, features=FeatureConfig(streams=args.streams))
    splits = {name: load_dataset(processed, name) for name in ("train", "val", "test")}
    train_data = students.make_train_data(splits["train"], config)
    val_data = students.make_eval_data(splits["val"], IN_MOTION_29, config)
    test_data = students.make_eval_data(splits["test"], IN_MOTION_29, config)
    seeds = list(range(args.seed, args.seed + args.seeds))
    start = time.perf_counter()
    results = students.train_students(arch, [hparams] * len(seeds), seeds, train_data, val_data, IN_MOTION_29,
                                   config, keep_state=True)  # fmt: skip
    seconds_train = time.perf_counter() - start
    spec = students.program_spec(arch, IN_MOTION_29, hparams.batch_size, config)
    states = engine.stack_students([r.state for r in results])
    probs = np.asarray(engine.get_programs(spec).predict(states, test_data.features))
    test = [students.evaluate_probs(p, test_data) for p in probs]
    return {
        "difficulty": difficulty,
        "infants": {name: int(len(d.labels)) for name, d in splits.items()},
        "cp": {name: int(np.sum(d.labels)) for name, d in splits.items()},
        "val_auc": [r.reward for r in results],
        "best_epoch": [r.best_epoch for r in results],
        "test_auc": [t["auc"] for t in test],
        "test_window_auc": [t["window_auc"] for t in test],
        "seconds_data": seconds_data,
        "seconds_train": seconds_train,
    }


def table(rows: list[dict]) -> list[str]:
    """The README's table: validation and test AUC per seed at each difficulty."""
    lines = ["| difficulty | validation AUC (per seed) | test AUC (per seed) |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['difficulty']:g} | {' / '.join(f'{a:.3f}' for a in r['val_auc'])} | "
                     f"{' / '.join(f'{a:.3f}' for a in r['test_auc'])} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulties", default="0,0.1,0.15,0.25,0.5")
    parser.add_argument("--infants", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--arch", default=str(ROOT / "configs" / "arch" / "quick_best.yaml"))
    parser.add_argument("--streams", default="V")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path, default=RESULTS / "difficulty.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="jaxcp-difficulty-") as tmp:
        for value in (float(d) for d in args.difficulties.split(",")):
            rows.append(run_one(value, args, Path(tmp)))
            r = rows[-1]
            print(f"difficulty {value:4.2f}: val AUC {' '.join(f'{a:.3f}' for a in r['val_auc'])}, "
                  f"test AUC {' '.join(f'{a:.3f}' for a in r['test_auc'])} "
                  f"(test {r['infants']['test']} infants, {r['cp']['test']} CP; "
                  f"{r['seconds_data']:.0f} s data, {r['seconds_train']:.0f} s training)", flush=True)
    report = {
        "benchmark": "difficulty",
        **common.environment(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "results": rows,
        "table": table(rows),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
