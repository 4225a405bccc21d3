"""Plots of a search run: every student's reward, and the controller's probabilities per decision."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from jaxcp import atomic


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic.write_bytes(path, buffer.getvalue())


def plot_search(run_dir: Path, meta: dict, space) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = meta["students"]
    if students:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ids = [s["id"] for s in students]
        rewards = [s["reward"] for s in students]
        ax.scatter(ids, rewards, c=[s["iteration"] for s in students], cmap="viridis", s=14)
        best = np.maximum.accumulate(rewards)
        ax.plot(ids, best, color="black", lw=1, label="best so far")
        for a in meta["argmax"]:
            ax.axhline(a["reward"], color="red", lw=0.5, alpha=0.4)
        ax.set(xlabel="student", ylabel="validation AUC (reward)", title="Rewards over the search")
        ax.legend(loc="lower right")
        _save(fig, run_dir / "rewards.png")
        plt.close(fig)
    history = meta["probabilities"]
    if history:
        decisions = space.decisions
        cols = 5
        rows = int(np.ceil(len(decisions) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
        iters = [h["iteration"] for h in history]
        for d, (decision, ax) in enumerate(zip(decisions, axes.flat, strict=False)):
            probs = np.array([h["probabilities"][d] for h in history])
            for c, choice in enumerate(decision.choices):
                ax.plot(iters, probs[:, c], marker=".", label=str(choice))
            ax.set_title(decision.name, fontsize=9)
            ax.set_ylim(0, 1)
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(decisions) :]:
            ax.axis("off")
        fig.suptitle("Controller probabilities per decision after each update")
        _save(fig, run_dir / "controller_probabilities.png")
        plt.close(fig)
