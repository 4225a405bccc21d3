"""Cross-validation against the old single-split protocol, on small balanced synthetic cohorts.

    python benchmarks/crossval.py            # 20- and 100-infant cohorts, about 15-20 minutes on a 2-core CPU
    python benchmarks/crossval.py --smoke    # the 20-infant cohort only, 2 epochs: 1-2 minutes

For each cohort (balanced, `jaxcp.data.synth` at its default difficulty 0.1, 12 s recordings, prepared with
`jaxcp prepare`'s defaults) the quick preset's best architecture (configs/arch/quick_best.yaml, velocity
stream, 3 s windows, CP infants 8 training windows per epoch and others 3) is evaluated twice, with the same
schedule (`--epochs`, default 8, validation every 4 epochs and after the last). Epochs and recording
length are chosen to fit about 15 minutes on a shared 2-core CPU:
these are short trainings, so the AUCs are lower than a full schedule would give.

- crossval: `jaxcp.training.crossval.crossval_run`, K = 5 folds drawn over all infants, the 5 fold models
  trained as one vmapped program, each fold's model kept by jaxcp's default rule (`select: last`); the
  pooled within-fold out-of-fold AUC with its bootstrap interval.
- single split, the old protocol: train on the dataset's `train` split, keep the epoch with the best `val`
  AUC (`select: auc`, AutoCP's rule), score the few `test` infants: their AUC with a stratified bootstrap
  interval (`jaxcp.clinical.metrics.bootstrap_auc_ci`).

Wall times are split into compile and train (+ validation). Writes benchmarks/results/crossval.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import common
import numpy as np

from jaxcp.clinical import metrics
from jaxcp.core.atomic import write_text
from jaxcp.core.config import jsonable
from jaxcp.core.runtime import DEFAULT_SEED, enable_compilation_cache
from jaxcp.data.dataset import dataset_layout, load_dataset
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.synth import SyntheticConfig, ensure_synthetic
from jaxcp.nas.space import read_arch
from jaxcp.training import engine
from jaxcp.training.crossval import CrossvalRequest, crossval_run
from jaxcp.training.run import build_config
from jaxcp.training.students import StudentRun, make_eval_data, make_train_data

ROOT = Path(__file__).resolve().parents[1]
RESULTS = common.RESULTS
ARCH = ROOT / "configs" / "arch" / "quick_best.yaml"
SETTINGS = ["eval_every=4", "eval_last=0", "window=90", "hop=45", "parts_positive=8", "parts_negative=3",
            "features.streams=V"]


def single_split(data: Path, arch, hparams, config, seed: int) -> dict:
    """Train on train, keep the best validation AUC (AutoCP's rule), score the test infants."""
    config = dataclasses.replace(config, select="auc")
    layout = dataset_layout(data)
    train_set, val_set, test_set = (load_dataset(data, s) for s in ("train", "val", "test"))
    start = time.perf_counter()
    run = StudentRun(arch, [hparams], [seed], make_train_data(train_set, config),
                     make_eval_data(val_set, layout, config), layout, config, keep_state=True)  # fmt: skip
    while not run.finished:
        run.run_epoch()
    test = make_eval_data(test_set, layout, config)
    probs = np.asarray(run.compiled(run.programs.predict, run.best_state, test.features))[0]
    risk = metrics.subject_scores(probs, test.owner, test_set.num_infants)
    labels = test_set.labels
    low, high = metrics.bootstrap_auc_ci(labels, risk, 2000, seed=DEFAULT_SEED)
    seconds = run.results()[0]
    return {"auc": metrics.roc_auc(labels, risk), "auc_ci": [low, high],
            "val_auc": float(run.tracker.best_auc[0]), "best_epoch": int(run.tracker.best_epoch[0]),
            "sizes": {name: [int(s.labels.sum()), int((s.labels == 0).sum())]
                      for name, s in (("train", train_set), ("val", val_set), ("test", test_set))},
            "seconds": {"compile": seconds.seconds_compile, "train": seconds.seconds_train + seconds.seconds_eval,
                        "total": time.perf_counter() - start}}  # fmt: skip


def cross_validation(data: Path, arch, hparams, config, seed: int, work: Path) -> dict:
    request = CrossvalRequest(arch, hparams, config, (seed,), str(data), ("train", "val", "test"), 5, seed)
    start = time.perf_counter()
    result = crossval_run(request, work, restart=True, log=lambda _: None, warn=lambda _: None)
    return {"auc": result["auc"], "auc_ci": result["auc_ci"], "auc_pooled": result["auc_pooled"],
            "auc_pooled_ci": result["auc_pooled_ci"], "sensitivity": result["sensitivity"],
            "sensitivity_ci": result["sensitivity_ci"], "specificity": result["specificity"],
            "specificity_ci": result["specificity_ci"], "fold_aucs": [f["auc"] for f in result["folds"]],
            "seconds": {"compile": result["seconds"]["compile"],
                        "train": result["seconds"]["train"] + result["seconds"]["eval"],
                        "total": time.perf_counter() - start}}  # fmt: skip


def _ci(value, interval) -> str:
    low, high = interval
    return f"{value:.3f} ({low:.3f}-{high:.3f}, width {high - low:.2f})"


def markdown(results: dict) -> str:
    lines = [f"Machine: {results['machine']}; {results['epochs']} epochs; command: `{results['command']}`", "",
             "| cohort | protocol | infants scored | AUC (95% CI, width) | compile s | train + validation s |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for row in results["cohorts"]:
        cv, single = row["crossval"], row["single_split"]
        test = single["sizes"]["test"]
        lines.append(f"| {row['infants']} | crossval K=5 (within-fold pooled) | {row['infants']} | "
                     f"{_ci(cv['auc'], cv['auc_ci'])} | {cv['seconds']['compile']:.0f} | "
                     f"{cv['seconds']['train']:.0f} |")
        lines.append(f"| {row['infants']} | single split (test) | {sum(test)} ({test[0]} CP) | "
                     f"{_ci(single['auc'], single['auc_ci'])} | {single['seconds']['compile']:.0f} | "
                     f"{single['seconds']['train']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20 infants, 2 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 8; 2 with --smoke)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--data-root", default=str(ROOT / "data" / "synthetic"), help="cached cohorts")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    enable_compilation_cache()
    load_before = os.getloadavg()
    epochs = args.epochs or (2 if args.smoke else 8)
    sizes = (20,) if args.smoke else (20, 100)
    arch, hparams = read_arch(ARCH, "none")
    config = build_config(epochs, SETTINGS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="jaxcp-bench-cv-") as tmp:
        for infants in sizes:
            data = ensure_synthetic(SyntheticConfig(infants=infants, minutes=0.2, cp_fraction=0.5), args.seed,
                                    IN_MOTION_29, args.data_root)  # fmt: skip
            engine.get_programs.cache_clear()  # each protocol's compile time counted, not inherited
            cv = cross_validation(data, arch, hparams, config, args.seed, Path(tmp) / f"cv{infants}")
            single = single_split(data, arch, hparams, config, args.seed)
            rows.append({"infants": infants, "crossval": cv, "single_split": single})
            print(f"{infants} infants: crossval AUC {_ci(cv['auc'], cv['auc_ci'])} in "
                  f"{cv['seconds']['total']:.0f} s; single split AUC {_ci(single['auc'], single['auc_ci'])} "
                  f"in {single['seconds']['total']:.0f} s", flush=True)
    results = {"epochs": epochs, "command": "python benchmarks/crossval.py" + (" --smoke" if args.smoke else ""),
               **common.environment(load_before),
               "cohorts": rows}  # fmt: skip
    out = Path(args.out)
    name = "crossval_smoke" if args.smoke else "crossval"
    write_text(out / f"{name}.json", json.dumps(jsonable(results), indent=2) + "\n")
    write_text(out / f"{name}.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
