"""The evaluation report: metrics.json, a Markdown or HTML page with the paper's Table II row, and figures.

Files written into the report folder (each atomically):

    metrics.json   everything computed (see `jaxcp.clinical.evaluation.evaluate`), NaN written as null
    infants.csv    id, label, risk, positive_classification (and certain_classification for ensembles),
                   class (the predicted class's name)
    report.md      or report.html: a Warnings section first when a model is flagged or the data are too
                   few, then data, class names, models, the threshold (value, rule, split and infants it was
                   chosen on, whether the risks are prior-corrected), the Table II row (TP, FP, TN, FN;
                   sensitivity, specificity, accuracy with exact Clopper-Pearson 95% intervals; AUC with a
                   bootstrap 95% interval), PPV/NPV/F1/balanced accuracy with intervals, every interval
                   with its width, each model alone, figures
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


def interval(value, low, high, digits: int = 3) -> str:
    """"0.800 (0.444-0.975, width 0.53)": a figure with its 95 % interval and the interval's width."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if any(v is None or not math.isfinite(v) for v in (low, high)):
        return f"{number(value, digits)} (no interval)"
    return f"{number(value, digits)} ({number(low, digits)}-{number(high, digits)}, width {high - low:.2f})"


def _with_ci(m: dict, name: str) -> str:
    return interval(m.get(name), m.get(f"{name}_ci_low"), m.get(f"{name}_ci_high"))


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
MODEL_COLUMNS = ("model", "AUC (95% CI)", "sensitivity (95% CI)", "specificity (95% CI)", "accuracy (95% CI)")
FLAG_WORDS = {
    "constant_risk": "hardly tells infants apart (its risks barely vary)",
    "chance_auc": "did no better than chance on its validation split",
    "small_validation": "was selected on a validation split too small to tell a good model from a lucky one",
}


def table_row(subject: dict) -> list[str]:
    """The Table II cells of subject-level metrics (`metrics.subject_metrics` plus auc_ci_low/high)."""
    counts = [str(int(subject[k])) for k in ("tp", "fp", "tn", "fn")]
    return counts + [_with_ci(subject, k) for k in ("sensitivity", "specificity", "accuracy", "auc")]


def model_row(m: dict) -> list[str]:
    return [m["model"]] + [_with_ci(m, k) for k in ("auc", "sensitivity", "specificity", "accuracy")]


def warning_lines(result: dict) -> list[str]:
    """The report's Warnings section in words: flagged models first, then the checks on the data."""
    lines = []
    for name, flags in (result.get("model_flags") or {}).items():
        for flag in flags:
            what = FLAG_WORDS.get(flag.get("code"), "was flagged by its training")
            message = str(flag.get("message", "")).strip().rstrip(".")
            lines.append(f"The model {name} {what}: {message}. Treat these figures as unreliable.")
    for text in result.get("warnings") or []:
        lines.append(text[0].upper() + text[1:] + ".")
    return lines


def _facts(result: dict) -> list[tuple[str, str]]:
    s = result["subject"]
    models = result["models"]
    names = result.get("labels") or ["no CP", "CP"]
    kind = "ensemble: median of window probabilities" if len(models) > 1 else "single model"
    threshold = result["threshold"]
    facts = [
        ("Data", f"{result['data']} (split {result['split']!r}: {result['num_infants']} infants, "
                 f"{result['num_positive']} {names[1]}, {result['num_infants'] - result['num_positive']} "
                 f"{names[0]}, {result['num_windows']} windows)"),
        ("Classes", f"negative {names[0]!r}, positive {names[1]!r}"),
        ("Models", f"{len(models)} ({kind}): " + ", ".join(models)),
        ("Threshold", f"{threshold['description']} (rule {threshold['rule']})"),
        ("Risks", (threshold.get("calibration") or {}).get("description", "calibration unknown")),
        ("Other metrics", f"PPV {_with_ci(s, 'ppv')}, NPV {_with_ci(s, 'npv')}, F1 {_with_ci(s, 'f1')}, "
                          f"balanced accuracy {_with_ci(s, 'balanced_accuracy')}"),
        ("Window-level AUC", f"{number(s.get('window_auc'))}: windows pooled, each infant weighted equally; not "
                             "an infant-level figure and without an interval (the windows of one infant are "
                             "not independent); the infant-level AUC in the table is the one to quote"),
    ]  # fmt: skip
    c = result.get("certainty")
    if c:
        facts.append(("Certainty", f"{c['certain']} of {result['num_infants']} predictions certain; accuracy "
                                   f"{number(c['accuracy_certain'])} among them, "
                                   f"{number(c['accuracy_uncertain'])} among the others"))  # fmt: skip
    return facts


INTERVALS = (
    "Sensitivity, specificity, accuracy, PPV and NPV: exact Clopper-Pearson 95% intervals from the counts; "
    "AUC, F1 and balanced accuracy: stratified bootstrap 95% intervals ({} resamples of infants). Each "
    "interval's width is given: a width above 0.4 means the figure is little more than a guess."
)


def markdown(result: dict) -> str:
    lines = [f"# jaxcp evaluation: {result['split']} split", ""]
    warnings = warning_lines(result)
    if warnings:
        lines += ["## Warnings", ""] + [f"- **Warning**: {w}" for w in warnings] + [""]
    lines += [f"- **{k}**: {v}" for k, v in _facts(result)]
    lines += [
        "",
        "## Subject-level classification (Table II)",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
        "| " + " | ".join(table_row(result["subject"])) + " |",
        "",
        INTERVALS.format(result["bootstrap"]),
        "",
    ]
    if len(result["per_model"]) > 1:
        lines += ["## Models on their own", "", "| " + " | ".join(MODEL_COLUMNS) + " |",
                  "|" + "---|" * len(MODEL_COLUMNS)]  # fmt: skip
        lines += ["| " + " | ".join(model_row(m)) + " |" for m in result["per_model"]]
        lines.append("")
    lines += ["## Figures", "", "![ROC curve](roc.png)", "", "![Scores](scores.png)", ""]
    return "\n".join(lines)


def html_page(result: dict) -> str:
    esc = html.escape
    warnings = "".join(f"<li><b>Warning</b>: {esc(w)}</li>" for w in warning_lines(result))
    warnings = f"<h2>Warnings</h2><ul class='warnings'>{warnings}</ul>" if warnings else ""
    facts = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in _facts(result))
    head = "".join(f"<th>{esc(c)}</th>" for c in TABLE_COLUMNS)
    row = "".join(f"<td>{esc(c)}</td>" for c in table_row(result["subject"]))
    models = ""
    if len(result["per_model"]) > 1:
        rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in model_row(m)) + "</tr>"
                       for m in result["per_model"])  # fmt: skip
        heads = "".join(f"<th>{esc(c)}</th>" for c in MODEL_COLUMNS)
        models = f"<h2>Models on their own</h2><table><tr>{heads}</tr>{rows}</table>"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>jaxcp evaluation</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:0.3em 0.6em}.warnings{color:#a00}</style></head><body>"
        f"<h1>jaxcp evaluation: {esc(result['split'])} split</h1>{warnings}<ul>{facts}</ul>"
        f"<h2>Subject-level classification (Table II)</h2><table><tr>{head}</tr><tr>{row}</tr></table>"
        f"<p>{esc(INTERVALS.format(result['bootstrap']))}</p>{models}"
        "<h2>Figures</h2><img src='roc.png' alt='ROC curve'><img src='scores.png' alt='Scores'>"
        "</body></html>\n"
    )


def infants_csv(result: dict) -> str:
    """One row per infant: id, label, then MovementOutcome's result columns, then the predicted class name."""
    ensemble = result.get("certainty") is not None
    header = "id,label,risk,prediction_threshold,positive_classification"
    rows = [header + (",certain_classification" if ensemble else "") + ",class"]
    threshold = result["threshold"]["value"]
    names = result.get("labels") or ["no CP", "CP"]
    for infant in result["infants"]:
        row = f"{infant['id']},{infant['label']},{infant['risk']!r},{threshold!r},{infant['positive']}"
        row += f",{infant['certain']}" if ensemble else ""
        rows.append(row + "," + csv_cell(infant.get("class", names[int(infant["positive"])])))
    return "\n".join(rows) + "\n"


def csv_cell(text: str) -> str:
    """A CSV field: quoted when it holds a comma, a quote or a line break."""
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


def plot_roc(path: Path, labels, scores, threshold: float, subject: dict) -> None:
    plt = pyplot()
    fpr, tpr = roc_points(labels, scores)
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot(fpr, tpr, drawstyle="default", color="C0", label=f"AUC {_with_ci(subject, 'auc')}")
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    op_tpr = (scores[labels] >= threshold).mean() if labels.any() else np.nan
    op_fpr = (scores[~labels] >= threshold).mean() if (~labels).any() else np.nan
    ax.plot([op_fpr], [op_tpr], "o", color="C3", label=f"threshold {threshold:.3g}")
    ax.set(
        xlabel="1 - specificity",
        ylabel="sensitivity",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        title=f"Subject-level ROC ({labels.sum()} + {(~labels).sum()} infants)",
    )
    ax.legend(loc="lower right", fontsize=7)
    save_png(fig, path)


def plot_scores(path: Path, labels, risk, window_probs, window_labels, threshold: float,
                names: tuple[str, str] = ("no CP", "CP")) -> None:
    """Per-infant risks and window probabilities by class; `names`: (negative, positive) class names."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    rng = np.random.default_rng(0)
    labels, risk = np.asarray(labels), np.asarray(risk)
    for cls, name in enumerate(names):
        values = risk[labels == cls]
        axes[0].scatter(values, cls + rng.uniform(-0.15, 0.15, values.size), s=18, alpha=0.8, label=name)
    axes[0].set(
        yticks=[0, 1],
        yticklabels=list(names),
        xlabel=f"risk (median window P({names[1]}))",
        xlim=(-0.02, 1.02),
        title="Infants",
    )
    bins = np.linspace(0, 1, 26)
    window_labels = np.asarray(window_labels)
    for cls, name in enumerate(names):
        axes[1].hist(
            np.asarray(window_probs)[window_labels == cls], bins=bins, alpha=0.6, density=True, label=name
        )
    axes[1].set(xlabel=f"window P({names[1]})", ylabel="density", title="Windows (not infant-level)")
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
    plot_roc(paths["roc.png"], arrays["labels"], arrays["risk"], threshold, result["subject"])
    plot_scores(
        paths["scores.png"],
        arrays["labels"],
        arrays["risk"],
        arrays["window_probs"],
        arrays["window_labels"],
        threshold,
        tuple(result.get("labels") or ("no CP", "CP")),
    )
    atomic.write_text(paths["infants.csv"], infants_csv(result))
    atomic.write_text(paths[f"report.{fmt}"], markdown(result) if fmt == "md" else html_page(result))
    atomic.write_text(paths["metrics.json"], json.dumps(jsonable(result), indent=2) + "\n")
    return list(paths.values())
