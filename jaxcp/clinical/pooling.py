"""Pooled out-of-fold metrics of a cross-validation, and its report.

Every infant has one out-of-fold risk, from the fold model that held it out, and one call (positive iff its
risk >= its own fold's threshold). Risks of different folds come from different models, so their scales
need not agree. The headline AUC therefore never compares two folds' risks:

- `auc`: the within-fold pooled AUC. Every (CP, non-CP) pair of infants that share a test fold is compared
  by the model that held both out (ties count 1/2): sum_k U_k / sum_k n_pos,k n_neg,k, which is the
  pair-weighted mean of the fold AUCs. Its 95 % interval (`auc_ci`): percentile bootstrap resampling CP and
  non-CP infants within each fold.
- `auc_pooled`: the usual AUC of all pooled (prior-corrected) risks, every CP against every non-CP infant,
  labelled as mixing the folds' scales; with a stratified bootstrap interval.
- sensitivity, specificity, accuracy, PPV, NPV from the pooled counts of the calls, with exact
  Clopper-Pearson intervals.

Files (`write_crossval_report`, each atomic): metrics.json, infants.csv (`id,label,risk,fold,positive`),
report.md or report.html, roc.png.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from jaxcp.clinical import metrics
from jaxcp.clinical.report import FORMATS, number, roc_points
from jaxcp.core import atomic
from jaxcp.core.config import jsonable
from jaxcp.core.figures import pyplot, save_png

FORMAT = "jaxcp-crossval-1"
BOOTSTRAP = 2000
OUTPUTS = ("metrics.json", "infants.csv", "report.md", "report.html", "roc.png")
POOLING = ("Each infant's risk comes from the fold model that never saw it (its seed ensemble: median of "
           "the seeds' window probabilities, prior-corrected for the training-window oversampling, then the "
           "median over the infant's windows). The AUC compares only CP and non-CP infants of the same test "
           "fold, scored by the same model, and pools these pairs over the folds (the pair-weighted mean of the "
           "fold AUCs), so no two models' score scales are compared; its interval resamples CP and non-CP "
           "infants within each fold. Sensitivity, specificity and accuracy pool every fold's calls at that "
           "fold's own threshold; their intervals are exact (Clopper-Pearson) from the pooled counts.")


def _fold_u(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney U of positives over negatives (ties 1/2) along the last axis; pos (..., P), neg (..., Q)."""
    ranks = stats.rankdata(np.concatenate([pos, neg], axis=-1), axis=-1)
    return ranks[..., : pos.shape[-1]].sum(axis=-1) - pos.shape[-1] * (pos.shape[-1] + 1) / 2


def _fold_groups(labels, scores, folds) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(CP scores, non-CP scores)] of every fold that holds both classes."""
    labels, scores, folds = np.asarray(labels), np.asarray(scores, np.float64), np.asarray(folds)
    groups = []
    for k in np.unique(folds):
        here = folds == k
        pos, neg = scores[here & (labels == 1)], scores[here & (labels == 0)]
        if pos.size and neg.size:
            groups.append((pos, neg))
    return groups


def within_fold_auc(labels, scores, folds) -> float:
    """P(CP risk > non-CP risk) over (CP, non-CP) pairs of the same fold, ties 1/2. labels, scores, folds:
    (N,). NaN when no fold holds both classes."""
    groups = _fold_groups(labels, scores, folds)
    pairs = sum(p.size * n.size for p, n in groups)
    return float(sum(_fold_u(p, n) for p, n in groups) / pairs) if pairs else math.nan


def within_fold_auc_ci(labels, scores, folds, n_boot: int = BOOTSTRAP, seed: int = 1234,
                       alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of `within_fold_auc`, resampling CP and non-CP infants within each fold."""
    groups = _fold_groups(labels, scores, folds)
    if not groups:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    total = np.zeros(n_boot)
    for pos, neg in groups:
        sample_pos = rng.choice(pos, size=(n_boot, pos.size), replace=True)
        sample_neg = rng.choice(neg, size=(n_boot, neg.size), replace=True)
        total += _fold_u(sample_pos, sample_neg)
    aucs = total / sum(p.size * n.size for p, n in groups)
    low, high = np.percentile(aucs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def crossval_result(ids: Sequence[str], labels, risk, folds, thresholds, *, n_boot: int = BOOTSTRAP,
                    seed: int = 1234) -> dict:
    """Pooled out-of-fold metrics. ids, labels, risk, folds, thresholds: (N,) per infant (thresholds: the
    threshold of the infant's fold). Returns the metrics part of metrics.json."""
    labels = np.asarray(labels).astype(int)
    risk, thresholds = np.asarray(risk, np.float64), np.asarray(thresholds, np.float64)
    positive = risk >= thresholds
    tp, fp, tn, fn = metrics.confusion(labels, risk, thresholds)  # each infant at its own fold's threshold
    out = {"num_infants": int(labels.size), "num_positive": int(labels.sum()), "pooling": POOLING,
           "bootstrap": n_boot, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
           "auc": within_fold_auc(labels, risk, folds),
           "auc_ci": list(within_fold_auc_ci(labels, risk, folds, n_boot, seed)),
           "auc_pairs": sum(p.size * n.size for p, n in _fold_groups(labels, risk, folds)),
           "auc_pooled": metrics.roc_auc(labels, risk),
           "auc_pooled_ci": list(metrics.bootstrap_auc_ci(labels, risk, n_boot, seed)),
           "auc_pooled_note": "all CP/non-CP pairs of the pooled risks: mixes the fold models' score scales"}
    for name, k, n in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp),
                       ("accuracy", tp + tn, labels.size), ("ppv", tp, tp + fp), ("npv", tn, tn + fn)):
        out[name] = k / n if n else math.nan
        out[f"{name}_ci"] = list(metrics.clopper_pearson(k, n))
    out["infants"] = [{"id": str(i), "label": int(y), "risk": float(r), "fold": int(f), "positive": bool(p)}
                      for i, y, r, f, p in zip(ids, labels, risk, folds, positive, strict=True)]
    return out


# ------------------------------------------------------------------------------------------------ report
def _interval(result: dict, name: str) -> tuple[str, str, str]:
    low, high = result.get(f"{name}_ci") or (None, None)
    width = None if low is None or high is None else high - low
    return number(result.get(name)), f"{number(low)}-{number(high)}", number(width)


TABLE = (("AUC (within folds)", "auc"), ("AUC (pooled risks; mixes folds' scales)", "auc_pooled"),
         ("Sensitivity", "sensitivity"), ("Specificity", "specificity"), ("Accuracy", "accuracy"),
         ("PPV", "ppv"), ("NPV", "npv"))


def _rows(result: dict) -> list[list[str]]:
    return [[label, *_interval(result, key)] for label, key in TABLE]


def _fold_rows(result: dict) -> list[list[str]]:
    return [[str(f["fold"]), str(f["val_fold"]), str(f["num_infants"]), str(f["num_positive"]), number(f["auc"]),
             number(f["val_auc"]), number(f["threshold"]), "/".join(str(e) for e in f["best_epoch"])]
            for f in result["folds"]]  # fmt: skip


FOLD_COLUMNS = ("test fold", "inner validation fold", "test infants", "CP", "test AUC", "inner val AUC",
                "threshold", "best epoch (per seed)")



_KEPT = {"last": "the last validated epoch (select: last)",
         "auc": "the best inner-validation AUC, ties by lower loss, then later epoch (select: auc)",
         "loss": "the lowest inner-validation loss (select: loss)"}


def _select(result: dict) -> str:
    return str(result.get("settings", {}).get("config", {}).get("select", ""))


def _facts(result: dict) -> list[tuple[str, str]]:
    return [
        ("Data", f"{result['data']} (splits {', '.join(result['splits'])}: {result['num_infants']} infants, "
                 f"{result['num_positive']} with CP)"),
        ("Folds", f"{result['num_folds']}, {result['fold_source']}; fold k is tested by the model trained on "
                  "the other folds except fold k+1, its inner validation part"),
        ("Models", f"{len(result['seeds'])} seed(s) per fold, {result['epochs']} epochs; kept model: "
                   + _KEPT.get(_select(result), "the training settings' selection rule")),
        ("Threshold", f"{result['threshold']['description']}; per fold: "
                      + ", ".join(number(v) for v in result["threshold"]["values"])),
        ("Counts", f"TP {result['tp']}, FP {result['fp']}, TN {result['tn']}, FN {result['fn']}"),
        ("Time", f"compile {result['seconds']['compile']:.1f} s, train {result['seconds']['train']:.1f} s, "
                 f"evaluation {result['seconds']['eval']:.1f} s"),
    ]  # fmt: skip


def markdown(result: dict) -> str:
    lines = ["# jaxcp cross-validation", ""] + [f"- **{k}**: {v}" for k, v in _facts(result)] + [""]
    if result["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in result["warnings"]] + [""]
    lines += ["## Out-of-fold results (subject level)", "", "| metric | value | 95% CI | CI width |",
              "|---|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in _rows(result)]
    lines += ["", f"How the risks were pooled: {result['pooling']} AUC intervals: {result['bootstrap']} "
              "bootstrap resamples.", "", "## Folds", "", "| " + " | ".join(FOLD_COLUMNS) + " |",
              "|" + "---|" * len(FOLD_COLUMNS)] + ["| " + " | ".join(r) + " |" for r in _fold_rows(result)]
    lines += ["", "## Figure", "", "![ROC of the pooled out-of-fold risks](roc.png)", ""]
    return "\n".join(lines)


def html_page(result: dict) -> str:
    esc = html.escape

    def table(head, rows):
        cells = "".join(f"<th>{esc(c)}</th>" for c in head)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{cells}</tr>{body}</table>"

    facts = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in _facts(result))
    warnings = "".join(f"<li>{esc(w)}</li>" for w in result["warnings"])
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>jaxcp cross-validation</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:0.3em 0.6em}</style></head><body>"
        f"<h1>jaxcp cross-validation</h1><ul>{facts}</ul>"
        + (f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else "")
        + "<h2>Out-of-fold results (subject level)</h2>"
        + table(("metric", "value", "95% CI", "CI width"), _rows(result))
        + f"<p>How the risks were pooled: {esc(result['pooling'])} AUC intervals: {result['bootstrap']} "
        "bootstrap resamples.</p><h2>Folds</h2>" + table(FOLD_COLUMNS, _fold_rows(result))
        + "<h2>Figure</h2><img src='roc.png' alt='ROC of the pooled out-of-fold risks'></body></html>\n"
    )


def infants_csv(result: dict) -> str:
    rows = ["id,label,risk,fold,positive"]
    rows += [f"{i['id']},{i['label']},{i['risk']!r},{i['fold']},{int(i['positive'])}" for i in result["infants"]]
    return "\n".join(rows) + "\n"


def plot_pooled_roc(path: Path, result: dict) -> None:
    """ROC of the pooled out-of-fold risks, with the operating point of the pooled per-fold calls."""
    plt = pyplot()
    labels = np.array([i["label"] for i in result["infants"]])
    risk = np.array([i["risk"] for i in result["infants"]])
    fpr, tpr = roc_points(labels, risk)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot(fpr, tpr, color="C0", label=f"pooled risks, AUC {number(result['auc_pooled'])}")
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    ax.plot([1 - result["specificity"]], [result["sensitivity"]], "o", color="C3",
            label="per-fold thresholds")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
           title=f"Out-of-fold ROC (within-fold AUC {number(result['auc'])})")
    ax.legend(loc="lower right", fontsize=8)
    save_png(fig, path)


def write_crossval_report(out_dir: str | Path, result: dict, fmt: str = "md") -> list[Path]:
    """Write roc.png, infants.csv, the report and metrics.json (last) into `out_dir`; returns the paths."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}")
    out_dir = Path(out_dir)
    paths = [out_dir / "roc.png", out_dir / "infants.csv", out_dir / f"report.{fmt}", out_dir / "metrics.json"]
    plot_pooled_roc(paths[0], result)
    atomic.write_text(paths[1], infants_csv(result))
    atomic.write_text(paths[2], markdown(result) if fmt == "md" else html_page(result))
    atomic.write_text(paths[3], json.dumps(jsonable(result), indent=2) + "\n")
    return paths
