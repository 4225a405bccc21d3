"""Plots of a search run: every student's reward, and the controller's probabilities per decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxcp.core.figures import pyplot, save_png
from jaxcp.nas.space import SearchSpace
from jaxcp.nas.state import SearchState


def plot_search(run_dir: Path, state: SearchState, space: SearchSpace) -> None:
    """rewards.png and controller_probabilities.png in `run_dir` (each only when there is something)."""
    if state.students:
        plot_rewards(run_dir / "rewards.png", state)
    if state.probabilities:
        plot_probabilities(run_dir / "controller_probabilities.png", state, space)


def plot_rewards(path: Path, state: SearchState) -> None:
    """Every student's reward (left) and, per iteration, the mean reward and the policy's entropy (right):
    a search that learns raises the one and lowers the other."""
    plt = pyplot()
    fig, (ax, per_iteration) = plt.subplots(1, 2, figsize=(12, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    ids = [s.id for s in state.students]
    rewards = [s.reward for s in state.students]
    ax.scatter(ids, rewards, c=[s.iteration for s in state.students], cmap="viridis", s=14)
    ax.plot(ids, np.maximum.accumulate(rewards), color="black", lw=1, label="best so far")
    for a in state.argmax:
        ax.axhline(a.reward, color="red", lw=0.5, alpha=0.4)
    ax.set(xlabel="student", ylabel="validation AUC (reward)", title="Rewards over the search")
    ax.legend(loc="lower right")
    done = [h for h in state.probabilities if h.get("mean_reward") is not None]
    iterations = [h["iteration"] for h in done]
    per_iteration.plot(iterations, [h["mean_reward"] for h in done], marker="o", color="C0")
    per_iteration.set(xlabel="iteration", title="Is the search learning?", xticks=iterations)
    per_iteration.set_ylabel("mean reward", color="C0")
    entropy = per_iteration.twinx()
    entropy.plot(iterations, [h["entropy"] for h in done], marker="s", color="C3")
    entropy.set_ylabel("policy entropy (nats)", color="C3")
    save_png(fig, path)


def plot_probabilities(path: Path, state: SearchState, space: SearchSpace) -> None:
    plt = pyplot()
    decisions = space.decisions
    cols = 5
    rows = int(np.ceil(len(decisions) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    iters = [h["iteration"] for h in state.probabilities]
    for d, (decision, ax) in enumerate(zip(decisions, axes.flat, strict=False)):
        probs = np.array([h["probabilities"][d] for h in state.probabilities])
        for c, choice in enumerate(decision.choices):
            ax.plot(iters, probs[:, c], marker=".", label=str(choice))
        ax.set_title(decision.name, fontsize=9)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(decisions) :]:
        ax.axis("off")
    fig.suptitle("Controller probabilities per decision after each update")
    save_png(fig, path)
