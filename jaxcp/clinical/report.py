"""The evaluation report: metrics.json, a Markdown or HTML page with the paper's Table II row, and figures.

Files written into the report folder (each atomically):

    metrics.json   everything computed (see `jaxcp.evaluate.evaluate`), NaN written as null
    infants.csv    id, label, risk, positive_classification (and certain_classification for ensembles)
    report.md      or report.html: data, models, threshold and how it was chosen, the Table II row
                   (TP, FP, TN, FN; sensitivity, specificity, accuracy with exact Clopper-Pearson 95%
                   intervals; AUC with a bootstrap 95% interval), further metrics, figures
    roc.png        the subject-level ROC curve with the operating point at the threshold
    scores.png     per-infant risk and per-window P(CP) by outcome, with the threshold
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from jaxcp.core import atomic
from jaxcp.core.config import jsonable
from jaxcp.core.figures import pyplot, save_png

FORMATS = ("md", "html")


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve, positive iff score >= threshold, thresholds at every distinct score.

    Starts at (0, 0) and ends at (1, 1); ties move diagonally (so the trapezoid area is the AUC).
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, np.float64)
    thresholds = np.unique(scores)[::-1]
    pos, neg = max(labels.sum(), 1), max((~labels).sum(), 1)
    tpr = [0.0] + [float((scores[labels] >= t).sum() / pos) for t in thresholds]
    fpr = [0.0] + [float((scores[~labels] >= t).sum() / neg) for t in thresholds]
    return np.array(fpr), np.array(tpr)


def number(value, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else f"{value:.{digits}f}"
    )


def _with_ci(m: dict, name: str) -> str:
    return f"{number(m.get(name))} ({number(m.get(f'{name}_ci_low'))}-{number(m.get(f'{name}_ci_high'))})"


TABLE_COLUMNS = (
    "TP",
    "FP",
    "TN",
    "FN",
    "Sensitivity (95% CI)",
    "Specificity (95% CI)",
    "Accuracy (95% CI)",
    "AUC (95% CI)",
)


def table_row(subject: dict) -> list[str]:
    """The Table II cells of subject-level metrics (`metrics.subject_metrics` plus auc_ci_low/high)."""
    counts = [str(int(subject[k])) for k in ("tp", "fp", "tn", "fn")]
    return counts + [_with_ci(subject, k) for k in ("sensitivity", "specificity", "accuracy", "auc")]


def _facts(result: dict) -> list[tuple[str, str]]:
    s = result["subject"]
    models = result["models"]
    kind = "ensemble: median of window probabilities" if len(models) > 1 else "single model"
    facts = [
        ("Data", f"{result['data']} (split {result['split']!r}: {result['num_infants']} infants, "
                 f"{result['num_positive']} with CP, {result['num_windows']} windows)"),
        ("Models", f"{len(models)} ({kind}): " + ", ".join(models)),
        ("Threshold", result["threshold"]["description"]),
        ("Other metrics", f"PPV {number(s.get('ppv'))}, NPV {number(s.get('npv'))}, "
                          f"F1 {number(s.get('f1'))}, "
                          f"balanced accuracy {number(s.get('balanced_accuracy'))}, window-level AUC "
                          f"{number(s.get('window_auc'))}"),
    ]  # fmt: skip
    c = result.get("certainty")
    if c:
        facts.append(("Certainty", f"{c['certain']} of {result['num_infants']} predictions certain; accuracy "
                                   f"{number(c['accuracy_certain'])} among them, "
                                   f"{number(c['accuracy_uncertain'])} among the others"))  # fmt: skip
    return facts


def markdown(result: dict) -> str:
    lines = [f"# jaxcp evaluation: {result['split']} split", ""]
    lines += [f"- **{k}**: {v}" for k, v in _facts(result)]
    lines += [
        "",
        "## Subject-level classification (Table II)",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
        "| " + " | ".join(table_row(result["subject"])) + " |",
        "",
        "Sensitivity, specificity and accuracy: exact Clopper-Pearson 95% intervals from the counts above; "
        f"AUC: stratified bootstrap 95% interval ({result['bootstrap']} resamples of infants).",
        "",
    ]
    if len(result["per_model"]) > 1:
        lines += [
            "## Models on their own",
            "",
            "| model | AUC | sensitivity | specificity | accuracy |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {m['model']} | {number(m['auc'])} | {number(m['sensitivity'])} | "
            f"{number(m['specificity'])} | {number(m['accuracy'])} |"
            for m in result["per_model"]
        ]
        lines.append("")
    lines += ["## Figures", "", "![ROC curve](roc.png)", "", "![Scores](scores.png)", ""]
    return "\n".join(lines)


def html_page(result: dict) -> str:
    esc = html.escape
    facts = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in _facts(result))
    head = "".join(f"<th>{esc(c)}</th>" for c in TABLE_COLUMNS)
    row = "".join(f"<td>{esc(c)}</td>" for c in table_row(result["subject"]))
    models = ""
    if len(result["per_model"]) > 1:
        rows = "".join(f"<tr><td>{esc(m['model'])}</td><td>{number(m['auc'])}</td>"
                       f"<td>{number(m['sensitivity'])}</td><td>{number(m['specificity'])}</td><td>{number(m['accuracy'])}</td></tr>"
                       for m in result["per_model"])  # fmt: skip
        models = (
            "<h2>Models on their own</h2><table><tr><th>model</th><th>AUC</th><th>sensitivity</th>"
            f"<th>specificity</th><th>accuracy</th></tr>{rows}</table>"
        )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>jaxcp evaluation</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:0.3em 0.6em}</style></head><body>"
        f"<h1>jaxcp evaluation: {esc(result['split'])} split</h1><ul>{facts}</ul>"
        f"<h2>Subject-level classification (Table II)</h2><table><tr>{head}</tr><tr>{row}</tr></table>"
        "<p>Sensitivity, specificity and accuracy: exact Clopper-Pearson 95% intervals from the counts; AUC: "
        f"stratified bootstrap 95% interval ({result['bootstrap']} resamples of infants).</p>{models}"
        "<h2>Figures</h2><img src='roc.png' alt='ROC curve'><img src='scores.png' alt='Scores'>"
        "</body></html>\n"
    )


def infants_csv(result: dict) -> str:
    """One row per infant: id, label, then MovementOutcome's result columns."""
    ensemble = result.get("certainty") is not None
    header = "id,label,risk,prediction_threshold,positive_classification"
    rows = [header + (",certain_classification" if ensemble else "")]
    threshold = result["threshold"]["value"]
    for infant in result["infants"]:
        row = f"{infant['id']},{infant['label']},{infant['risk']!r},{threshold!r},{infant['positive']}"
        rows.append(row + (f",{infant['certain']}" if ensemble else ""))
    return "\n".join(rows) + "\n"


def plot_roc(path: Path, labels, scores, threshold: float, auc: float) -> None:
    plt = pyplot()
    fpr, tpr = roc_points(labels, scores)
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot(fpr, tpr, drawstyle="default", color="C0", label=f"AUC {number(auc)}")
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    op_tpr = (scores[labels] >= threshold).mean() if labels.any() else np.nan
    op_fpr = (scores[~labels] >= threshold).mean() if (~labels).any() else np.nan
    ax.plot([op_fpr], [op_tpr], "o", color="C3", label=f"threshold {threshold:.3g}")
    ax.set(
        xlabel="1 - specificity",
        ylabel="sensitivity",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        title="Subject-level ROC",
    )
    ax.legend(loc="lower right")
    save_png(fig, path)


def plot_scores(path: Path, labels, risk, window_probs, window_labels, threshold: float) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    rng = np.random.default_rng(0)
    labels, risk = np.asarray(labels), np.asarray(risk)
    for cls, name in ((0, "no CP"), (1, "CP")):
        values = risk[labels == cls]
        axes[0].scatter(values, cls + rng.uniform(-0.15, 0.15, values.size), s=18, alpha=0.8, label=name)
    axes[0].set(
        yticks=[0, 1],
        yticklabels=["no CP", "CP"],
        xlabel="risk (median window P(CP))",
        xlim=(-0.02, 1.02),
        title="Infants",
    )
    bins = np.linspace(0, 1, 26)
    window_labels = np.asarray(window_labels)
    for cls, name in ((0, "no CP"), (1, "CP")):
        axes[1].hist(
            np.asarray(window_probs)[window_labels == cls], bins=bins, alpha=0.6, density=True, label=name
        )
    axes[1].set(xlabel="window P(CP)", ylabel="density", title="Windows")
    for ax in axes:
        ax.axvline(threshold, color="C3", linestyle="--", linewidth=1)
    axes[1].legend()
    save_png(fig, path)


def write_report(out_dir: str | Path, result: dict, arrays: dict, fmt: str = "md") -> list[Path]:
    """Write metrics.json, infants.csv, the report and both figures into `out_dir`; returns the paths.

    arrays: labels (N,), risk (N,), window_probs (M,), window_labels (M,).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}")
    out_dir = Path(out_dir)
    threshold = result["threshold"]["value"]
    paths = {
        name: out_dir / name
        for name in ("metrics.json", "infants.csv", f"report.{fmt}", "roc.png", "scores.png")
    }
    plot_roc(paths["roc.png"], arrays["labels"], arrays["risk"], threshold, result["subject"]["auc"])
    plot_scores(
        paths["scores.png"],
        arrays["labels"],
        arrays["risk"],
        arrays["window_probs"],
        arrays["window_labels"],
        threshold,
    )
    atomic.write_text(paths["infants.csv"], infants_csv(result))
    atomic.write_text(paths[f"report.{fmt}"], markdown(result) if fmt == "md" else html_page(result))
    atomic.write_text(paths["metrics.json"], json.dumps(jsonable(result), indent=2) + "\n")
    return list(paths.values())
