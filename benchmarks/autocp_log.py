"""Did AutoCP's own search learn? Figures from its published search log, read at run time.

    AUTOCP_DIR=/path/to/AutoCP python benchmarks/autocp_log.py [--log logs/nas_cp29/action_list.csv]

Reads the original AutoCP checkout's `action_list.csv` (one line per student: id, architecture actions,
hyperparameter actions, and its validation metrics as a Python dict literal, from which only the `auc`
number is taken with a regular expression; nothing in the file is evaluated). Students are numbered in
the order they were drawn; AutoCP's loop draws 20 in its first iteration and 30 in each later one
(`../shared/reference/autocp-algorithm.md`), so a student's iteration follows from its id. Reports the
number of students, the mean AUC per iteration, the Spearman rank correlation between a student's id and
its AUC (with its p-value), and the best AUC among the first 20 (random, the policy had not moved) and
in each later iteration; rows with ids from 1000 on are AutoCP's argmax candidates, reported apart.
Without AUTOCP_DIR (or --autocp-dir) it says so and exits 0. Writes benchmarks/results/autocp_log.json.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

import common
import numpy as np
from scipy import stats

FIRST, LATER = 20, 30  # students in AutoCP's first iteration and in each later one
ARGMAX_ID = 1000  # AutoCP numbers its argmax candidates from 1000 (they are not sampled students)
AUC = re.compile(r"'auc':\s*([0-9.]+)")


def iteration_of(student_id: int) -> int:
    return 0 if student_id < FIRST else 1 + (student_id - FIRST) // LATER


def read_log(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(student ids, validation AUCs) of the log, in file order."""
    ids, aucs = [], []
    with path.open(newline="") as f:
        for line, row in enumerate(csv.reader(f), 1):
            match = AUC.search(row[-1]) if len(row) >= 4 else None
            if match is None or not row[0].strip().isdigit():
                raise SystemExit(f"{path}:{line}: expected 'id,actions,hparams,{{... 'auc': X ...}}'")
            ids.append(int(row[0]))
            aucs.append(float(match.group(1)))
    return np.asarray(ids), np.asarray(aucs)


def summarise(ids: np.ndarray, aucs: np.ndarray) -> dict:
    argmax = ids >= ARGMAX_ID
    argmax_aucs, ids, aucs = aucs[argmax], ids[~argmax], aucs[~argmax]
    iterations = np.asarray([iteration_of(i) for i in ids])
    rho, p = stats.spearmanr(ids, aucs)
    per_iteration = [{"iteration": int(k), "students": int((iterations == k).sum()),
                      "mean_auc": float(aucs[iterations == k].mean()), "best_auc": float(aucs[iterations == k].max())}
                     for k in np.unique(iterations)]  # fmt: skip
    return {"students": len(ids), "iterations": per_iteration, "spearman_id_auc": float(rho), "spearman_p": float(p),
            "best_first_20": float(aucs[ids < FIRST].max()), "best_later": float(aucs[ids >= FIRST].max()),
            "argmax_candidates": len(argmax_aucs), "argmax_aucs": argmax_aucs.tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autocp-dir", default=os.environ.get("AUTOCP_DIR"), help="AutoCP checkout (AUTOCP_DIR)")
    parser.add_argument("--log", default="logs/nas_cp29/action_list.csv", help="the log, relative to the checkout")
    args = parser.parse_args(argv)
    if not args.autocp_dir:
        print("autocp_log: set AUTOCP_DIR (or --autocp-dir) to a checkout of DeepInMotion/AutoCP; nothing measured")
        return 0
    path = Path(args.autocp_dir) / args.log
    if not path.is_file():
        print(f"autocp_log: {path}: no such file", file=sys.stderr)
        return 2
    result = {**common.environment(), "benchmark": "autocp_log", "log": args.log, **summarise(*read_log(path))}
    for row in result["iterations"]:
        print(f"iteration {row['iteration']:2d}: {row['students']:2d} students, mean AUC {row['mean_auc']:.3f}, "
              f"best {row['best_auc']:.3f}")
    print(f"{result['students']} students; Spearman(id, AUC) {result['spearman_id_auc']:+.3f} "
          f"(p = {result['spearman_p']:.2f}); best of the first {FIRST} {result['best_first_20']:.3f}, "
          f"best later {result['best_later']:.3f}")
    print(f"wrote {common.write_json(common.RESULTS / 'autocp_log.json', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
