"""Does the search learn? REINFORCE against random search at the same student budget, paired over seeds.

    python benchmarks/search_vs_random.py --small        # about 30 minutes on a 2-core CPU
    python benchmarks/search_vs_random.py                # more seeds, students and infants (GPU suite)

Both strategies run the same search loop (`jaxcp.nas.loop.Search`, `controller.strategy`) in this process,
on one synthetic cohort where the architecture matters: the synthetic CP signal (limbs moving in sync) is
picked up by joint attention, Multi-GCN or 3-hop graph layers, and hardly by the rest. The benchmark space
crosses those choices (16 architectures); training hyperparameters are fixed. Per seed, both strategies
draw the same number of students; compiled programs are shared, so compile time does not favour either.

Reported, per strategy, over seeds:
- the mean student reward (validation AUC) per iteration (`search_vs_random.png`);
- the best candidate's AUC on held-out infants: the student with the best validation AUC is trained again
  for `--final-epochs` and scored on the test split (not the maximum of validation AUCs);
- how many students each needed before one reached `--target` validation AUC;
- paired over seeds (REINFORCE minus random): the mean difference and a Wilcoxon signed-rank p-value.

Writes benchmarks/results/search_vs_random[_small|_smoke].json and .md (committed); the runs and the figure
stay under --out (default benchmarks/results/search_vs_random/, not committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import common
import numpy as np
from scipy import stats

from jaxcp.clinical import metrics
from jaxcp.clinical.predictor import load_checkpoint
from jaxcp.core.atomic import write_text
from jaxcp.core.figures import pyplot, save_png
from jaxcp.core.runtime import enable_compilation_cache
from jaxcp.data.dataset import load_dataset
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.synth import SyntheticConfig, ensure_synthetic
from jaxcp.data.windows import make_eval_windows
from jaxcp.nas.config import load_search_config
from jaxcp.nas.loop import Search
from jaxcp.nas.space import load_space
from jaxcp.training.experiment import Experiment, load_experiment

RESULTS = common.RESULTS
STRATEGIES = ("reinforce", "random")
SPACE = """\
# benchmarks/search_vs_random.py: 16 architectures, of which those with joint attention, Multi-GCN or
# 3-hop graph layers can pick up the synthetic CP signal
arch:
  init_channels: [16]
  activation: [relu, swish]
  attention: [ca, ja]
  conv: [basic]
  dropout: [0.0]
  multi_gcn: [false, true]
  expand_ratio: [1.5]
  reduct_ratio: [2]
  blocks_in: [1]
  depth_in: [1]
  stride_in: [3]
  scale_in: [1]
  temporal_window_in: [3]
  graph_distance_in: [1, 3]
  blocks_main: [1]
  depth_main: [1]
  stride_main: [1]
  scale_main: [1]
  temporal_window_main: [3]
  graph_distance_main: [1]
hparams:
  lr: [0.005]
  optimizer: [adam]
  weight_decay: [0.0]
  momentum: [0.9]
  batch_size: [24]
"""


@dataclasses.dataclass(frozen=True)
class Size:
    seeds: int
    iterations: int
    first_students: int
    students: int
    epochs: int
    final_epochs: int
    infants: int


SMALL = Size(seeds=3, iterations=3, first_students=4, students=4, epochs=8, final_epochs=10, infants=100)
SMOKE = Size(seeds=2, iterations=2, first_students=2, students=2, epochs=1, final_epochs=1, infants=40)
FULL = Size(seeds=5, iterations=6, first_students=12, students=12, epochs=10, final_epochs=30, infants=200)


class Quiet:
    def line(self, text):
        pass

    warn = line

    def student(self, record, index, count, best):
        pass


def search_config(strategy: str, seed: int, size: Size, space_file: Path, data: Path):
    overrides = [f"seed={seed}", f"space={space_file}", f"data={data}", f"controller.strategy={strategy}",
                 f"iterations={size.iterations}", f"first_students={size.first_students}",
                 f"students={size.students}", f"student.epochs={size.epochs}",
                 f"student.eval_every={max(size.epochs // 2, 1)}",
                 "student.argmax_epochs=0"]  # fmt: skip
    return load_search_config("quick", overrides)


def make_experiment(data: Path, size: Size, space_file: Path) -> Experiment:
    """The cohort on device once for every run: the students' schedule (the same for both strategies and
    all seeds) and, as the long schedule, the final training of each run's best candidate."""
    student = search_config("reinforce", 1, size, space_file, data).student.student_config()
    final = dataclasses.replace(student, epochs=size.final_epochs, eval_every=max(size.final_epochs // 4, 1),
                                eval_last=0, early_stop=False)  # fmt: skip
    return load_experiment(data, IN_MOTION_29, student, final)


def held_out_auc(experiment: Experiment, run_dir: Path, best: dict, space, test_set, seed: int) -> float:
    """Train the best candidate again (the experiment's long schedule) and score it on the test split."""
    arch, hparams = space.decode(best["actions"])
    experiment.train(arch, [hparams], [seed], long=True, checkpoint_dir=run_dir / "final")
    predictor = load_checkpoint(run_dir / "final")
    windows = make_eval_windows(test_set, window=predictor.spec.window, hop=predictor.spec.hop)
    probs, _ = predictor(windows.windows)
    risk = metrics.subject_scores(probs, windows.owner, test_set.num_infants)
    return float(metrics.roc_auc(test_set.labels, risk))


def run_one(strategy: str, seed: int, size: Size, space_file: Path, data: Path, out: Path, experiment: Experiment,
            test_set) -> dict:
    config = search_config(strategy, seed, size, space_file, data)
    space = load_space(space_file)
    run_dir = out / f"{strategy}_seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh search, never a resumed one
    start = time.perf_counter()
    summary = Search(config, run_dir, experiment, space, Quiet()).run()
    search_s = time.perf_counter() - start
    students = [json.loads(line) for line in (run_dir / "students.jsonl").read_text().splitlines()]
    rewards = [s["reward"] for s in students]
    per_iteration = [float(np.mean([s["reward"] for s in students if s["iteration"] == it]))
                     for it in range(config.iterations)]  # fmt: skip
    start = time.perf_counter()
    test_auc = held_out_auc(experiment, run_dir, summary["best"], space, test_set, seed)
    return {"strategy": strategy, "seed": seed, "rewards": rewards, "mean_reward_per_iteration": per_iteration,
            "best_validation_auc": max(rewards), "best_actions": summary["best"]["actions"],
            "best_arch": {k: summary["best"]["arch"][k] for k in ("activation", "attention", "multi_gcn",
                                                                  "graph_distance_in")},
            "held_out_auc": test_auc, "seconds_search": search_s,
            "seconds_final": time.perf_counter() - start}  # fmt: skip


def students_to_reach(rewards: list[float], target: float) -> int | None:
    """1-based number of students drawn until one reached `target` (None: never)."""
    return next((i + 1 for i, r in enumerate(rewards) if r >= target), None)


def paired(a: list[float], b: list[float]) -> dict:
    diff = np.asarray(a) - np.asarray(b)
    p = float(stats.wilcoxon(diff).pvalue) if np.any(diff != 0) and len(diff) > 1 else 1.0
    return {"mean_difference": float(diff.mean()), "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
            "wilcoxon_p": p}  # fmt: skip


def summarise(rows: list[dict], target: float) -> dict:
    by = {s: sorted((r for r in rows if r["strategy"] == s), key=lambda r: r["seed"]) for s in STRATEGIES}
    out = {}
    for s, runs in by.items():
        reach = [students_to_reach(r["rewards"], target) for r in runs]
        out[s] = {
            "mean_reward_per_iteration": np.mean([r["mean_reward_per_iteration"] for r in runs], axis=0).tolist(),
            "last_iteration_mean_reward": float(np.mean([r["mean_reward_per_iteration"][-1] for r in runs])),
            "held_out_auc": [r["held_out_auc"] for r in runs],
            "held_out_auc_mean": float(np.mean([r["held_out_auc"] for r in runs])),
            "best_validation_auc_mean": float(np.mean([r["best_validation_auc"] for r in runs])),
            "students_to_reach_target": reach,
        }
    out["paired_reinforce_minus_random"] = {
        "held_out_auc": paired(*(out[s]["held_out_auc"] for s in STRATEGIES)),
        "last_iteration_mean_reward": paired(*([r["mean_reward_per_iteration"][-1] for r in by[s]]
                                               for s in STRATEGIES)),
    }  # fmt: skip
    return out


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for color, strategy in zip(("C0", "C1"), STRATEGIES, strict=True):
        curves = np.array([r["mean_reward_per_iteration"] for r in rows if r["strategy"] == strategy])
        iterations = np.arange(curves.shape[1])
        for curve in curves:
            ax.plot(iterations, curve, color=color, alpha=0.25, lw=1)
        ax.plot(iterations, curves.mean(axis=0), color=color, lw=2.5, marker="o", label=f"{strategy} (mean)")
    ax.set(xlabel="iteration", ylabel="mean student validation AUC", title="REINFORCE vs random search")
    ax.set_xticks(iterations)
    ax.legend()
    save_png(fig, path)


def markdown(summary: dict, size: Size, target: float) -> str:
    lines = [f"| strategy | mean reward per iteration | held-out AUC (mean) | best validation AUC (mean) | "
             f"students to reach {target:g} |", "|---|---|---|---|---|"]
    for s in STRATEGIES:
        r = summary[s]
        per = ", ".join(f"{v:.3f}" for v in r["mean_reward_per_iteration"])
        reach = ", ".join("-" if v is None else str(v) for v in r["students_to_reach_target"])
        lines.append(f"| {s} | {per} | {r['held_out_auc_mean']:.3f} | {r['best_validation_auc_mean']:.3f} | {reach} |")
    for what, p in summary["paired_reinforce_minus_random"].items():
        lines.append(f"\nPaired over {size.seeds} seeds, {what}: REINFORCE minus random {p['mean_difference']:+.3f} "
                     f"({p['wins']} wins, {p['losses']} losses), Wilcoxon p = {p['wilcoxon_p']:.2f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the 2-core CPU size (about 30 minutes)")
    parser.add_argument("--smoke", action="store_true", help="a minutes-long run that only checks the script")
    parser.add_argument("--target", type=float, default=0.8, help="validation AUC to reach (default 0.8)")
    parser.add_argument("--difficulty", type=float, default=0.0, help="synthetic cohort difficulty (default 0)")
    parser.add_argument("--out", default=str(RESULTS / "search_vs_random"), help="folder for runs and results")
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else SMALL if args.small else FULL
    enable_compilation_cache()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space_file = out / "space.yaml"
    write_text(space_file, SPACE)
    # the quick preset's cohort at --small: its students are known to pick up the signal in 8 epochs
    cohort = SyntheticConfig(infants=size.infants, minutes=1.0, cp_fraction=0.3, difficulty=args.difficulty)
    data = ensure_synthetic(cohort, 1234, IN_MOTION_29, out / "data")
    test_set = load_dataset(data, "test")
    experiment = make_experiment(data, size, space_file)
    start, rows, load_before = time.perf_counter(), [], os.getloadavg()
    for seed in range(1, size.seeds + 1):
        for strategy in STRATEGIES:
            rows.append(run_one(strategy, seed, size, space_file, data, out, experiment, test_set))
            r = rows[-1]
            print(f"seed {seed} {strategy:<9} mean reward per iteration "
                  f"{' '.join(f'{v:.3f}' for v in r['mean_reward_per_iteration'])}, best validation "
                  f"{r['best_validation_auc']:.3f}, held-out {r['held_out_auc']:.3f} ({r['best_arch']})", flush=True)
    summary = summarise(rows, args.target)
    plot(rows, out / "search_vs_random.png")
    text = markdown(summary, size, args.target)
    print(text)
    result = {**common.environment(load_before), "size": dataclasses.asdict(size),
              "difficulty": args.difficulty, "target": args.target, "seconds": time.perf_counter() - start,
              "summary": summary, "runs": rows}  # fmt: skip
    name = "search_vs_random" + ("_small" if args.small else "_smoke" if args.smoke else "")
    common.write_json(RESULTS / f"{name}.json", result)  # the runs stay under --out, uncommitted
    write_text(RESULTS / f"{name}.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
