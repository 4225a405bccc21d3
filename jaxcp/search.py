"""`python -m jaxcp.search`: the architecture search (the main job), resumable after a kill.

The loop (reference §6.3): iteration 0 trains `first_students` students sampled from the controller's
policy, later iterations `students`; students of one iteration that share architecture and batch size are
trained together (vmapped). After each iteration the controller takes one REINFORCE step on the fresh
rollouts plus a replay batch, the students above the replay threshold enter the replay memory, and the
policy's argmax candidate is trained for the long schedule and recorded.

Everything the loop needs to continue (controller and optimizer state, replay memory, PRNG key,
iteration, the iteration's sampled students and every finished student's record) is checkpointed with
Orbax after every group of students and after every update, so `--resume RUN_DIR` trains no finished
student again and, on CPU with the same seed, ends in the same controller state as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import jax
import numpy as np

from jaxcp import atomic, controller, replay
from jaxcp.checkpoint import jsonable
from jaxcp.config import dump_yaml, from_dict, load_yaml, to_dict
from jaxcp.errors import InputError, exit_with
from jaxcp.features import FeatureConfig
from jaxcp.runtime import enable_compilation_cache, limit_malloc_arenas
from jaxcp.search_config import SearchConfig, load_search_config, resolve_config_path
from jaxcp.search_state import SearchCheckpoints
from jaxcp.space import SearchSpace, arch_file_text, load_space
from jaxcp.workflow import Experiment, load_experiment

# --------------------------------------------------------------------------------------------------------
# Pure pieces


def group_students(actions: list[tuple[int, ...]], space: SearchSpace, max_group: int = 8) -> list[list[int]]:
    """Indices of students grouped by (architecture, batch size), in order of first appearance.

    A group is cut into chunks of 8, 4, 2 and 1 students (its binary decomposition), so that the vmapped
    programs of an architecture are compiled for at most four student counts.
    """
    groups: dict = defaultdict(list)
    for i, a in enumerate(actions):
        arch, hp = space.decode(a)
        groups[(arch, hp.batch_size)].append(i)
    chunks = []
    for members in groups.values():
        while members:
            size = min(max_group, 1 << (len(members).bit_length() - 1))
            chunks.append(members[:size])
            members = members[size:]
    return chunks


def student_seed(seed: int, student_id: int, replica: int) -> int:
    return (seed * 1_000_003 + student_id * 101 + replica) % (2**31 - 1)


# --------------------------------------------------------------------------------------------------------
# The loop


class Search:
    """One search run in `run_dir`; `run()` continues from the latest checkpoint if there is one."""

    def __init__(self, config: SearchConfig, run_dir: Path, experiment: Experiment, space: SearchSpace, log):
        self.config, self.run_dir, self.exp, self.space, self.log = config, run_dir, experiment, space, log
        num_choices = space.num_choices
        ctrl_cfg = controller.ControllerConfig(
            **{k: v for k, v in to_dict(config.controller).items() if v is not None}
        )
        self.ctrl_cfg = ctrl_cfg
        self.checkpoints = SearchCheckpoints(run_dir / "checkpoints")
        self._counts: dict = {}
        self.fresh_tree = {
            "controller": controller.init(num_choices, ctrl_cfg),
            "replay": replay.init(config.replay.capacity, len(num_choices), config.replay.batch),
        }
        self.tree, self.meta = self.checkpoints.restore_or(self.fresh_tree, self._fresh_meta(), log)

    def _fresh_meta(self) -> dict:
        return {"iteration": 0, "pending": None, "phase": "students", "students": [], "argmax": [],
                "probabilities": []}  # fmt: skip

    def _save(self) -> None:
        self.checkpoints.save(self.tree, self.meta)
        lines = "".join(json.dumps(s) + "\n" for s in self.meta["students"])
        atomic.write_text(self.run_dir / "students.jsonl", lines)

    def run(self) -> dict:
        cfg = self.config
        while self.meta["iteration"] < cfg.iterations and not self._target_reached():
            if self.meta["phase"] == "students":
                self._train_iteration_students()
                self._update_controller()
            if self.meta["phase"] == "argmax":
                self._train_argmax()
            self.meta.update(iteration=self.meta["iteration"] + 1, phase="students", pending=None)
            self._save()
        return self._finish()

    def _target_reached(self) -> bool:
        target = self.config.target_auc
        return target is not None and any(a["reward"] >= target for a in self.meta["argmax"])

    def _iteration_key(self):
        return jax.random.fold_in(jax.random.PRNGKey(self.config.seed), self.meta["iteration"])

    def _train_iteration_students(self) -> None:
        cfg, it = self.config, self.meta["iteration"]
        if self.meta["pending"] is None:
            n = cfg.first_students if it == 0 else cfg.students
            actions = controller.sample(self._iteration_key(), self.tree["controller"], n)
            first_id = len(self.meta["students"])
            self.meta["pending"] = [
                {"id": first_id + i, "actions": [int(v) for v in row]} for i, row in enumerate(np.asarray(actions))
            ]
            self._save()
        done = {s["id"] for s in self.meta["students"]}
        todo = [p for p in self.meta["pending"] if p["id"] not in done]
        for group in group_students([tuple(p["actions"]) for p in todo], self.space):
            records = self._train_group([todo[i] for i in group], it)
            self.meta["students"].extend(records)
            self._save()
            first_id = self.meta["pending"][0]["id"]
            for r in records:
                self.log.student(r, r["id"] - first_id + 1, len(self.meta["pending"]), self._best_reward())

    def _train_group(self, members: list[dict], iteration: int) -> list[dict]:
        cfg = self.config
        n = cfg.student.seeds
        decoded = [self.space.decode(tuple(m["actions"])) for m in members]
        arch = decoded[0][0]  # one architecture per group
        hparams = [hp for _, hp in decoded for _ in range(n)]
        seeds = [student_seed(cfg.seed, m["id"], r) for m in members for r in range(n)]
        results = self.exp.train(arch, hparams, seeds, long=False)
        counts = self._complexity(arch)
        return [
            _student_record(m, iteration, arch, hp, results[k * n : (k + 1) * n], counts)
            for k, (m, (_, hp)) in enumerate(zip(members, decoded, strict=True))
        ]

    def _complexity(self, arch) -> dict:
        """Trainable parameters and thop MACs at the paper's 150 frames (traced, no compilation)."""
        if arch not in self._counts:
            from jaxcp.complexity import complexity

            self._counts[arch] = complexity(arch, self.exp.layout, frames=150, xla=False)
        return self._counts[arch]

    def _update_controller(self) -> None:
        cfg, it = self.config, self.meta["iteration"]
        fresh = [s for s in self.meta["students"] if s["iteration"] == it]
        actions = np.asarray([s["actions"] for s in fresh], np.int32)
        rewards = np.asarray([s["reward"] for s in fresh], np.float32)
        memory = self.tree["replay"]
        if cfg.replay.enabled:
            replay_key = jax.random.fold_in(self._iteration_key(), 1)
            r_actions, r_rewards, valid, memory = replay.sample(replay_key, memory)
            keep = np.asarray(valid, bool)
            actions = np.concatenate([actions, np.asarray(r_actions)[keep]])
            rewards = np.concatenate([rewards, np.asarray(r_rewards)[keep]])
        state, info = controller.update(self.tree["controller"], actions, rewards)
        if cfg.replay.enabled:
            fresh_actions = np.asarray([s["actions"] for s in fresh], np.int32)
            fresh_rewards = np.asarray([s["reward"] for s in fresh], np.float32)
            memory = replay.push(memory, fresh_actions, fresh_rewards, cfg.replay.threshold)
        self.tree = {"controller": state, "replay": memory}
        probs = [np.asarray(p).round(6).tolist() for p in controller.probabilities(state)]
        self.meta["probabilities"].append({"iteration": it, "probabilities": probs})
        self.meta["phase"] = "argmax" if cfg.student.argmax_epochs > 0 else "done"
        self._save()
        self.log.line(f"iteration {it}: controller updated ({len(actions)} rollouts, loss {float(info['loss']):.4f})")

    def _train_argmax(self) -> None:
        it = self.meta["iteration"]
        actions = tuple(int(a) for a in np.asarray(controller.argmax(self.tree["controller"])))
        arch, hp = self.space.decode(actions)
        self.log.line(f"iteration {it}: training the argmax candidate for {self.config.student.argmax_epochs} epochs")
        out = self.run_dir / "argmax" / f"iteration_{it:03d}"
        [result] = self.exp.train(arch, [hp], [student_seed(self.config.seed, 10**6 + it, 0)], long=True,
                                  checkpoint_dir=out)  # fmt: skip
        record = {"iteration": it, "actions": list(actions), "arch": to_dict(arch), "hparams": to_dict(hp),
                  "reward": result.reward, "status": result.status, "best_epoch": result.best_epoch,
                  "metrics": result.metrics, "checkpoint": str(out.relative_to(self.run_dir)),
                  "seconds_train": result.seconds_train, "seconds_compile": result.seconds_compile}  # fmt: skip
        atomic.write_text(out / "arch.yaml", arch_file_text(arch, hp))
        self.meta["argmax"].append(jsonable(record))
        self.meta["phase"] = "done"
        self._save()
        self.log.line(f"iteration {it}: argmax candidate validation AUC {result.reward:.3f}")

    def _best_reward(self) -> float:
        return max((s["reward"] for s in self.meta["students"]), default=float("nan"))

    def _finish(self) -> dict:
        best = _pick_best(self.meta)
        if best is not None:
            arch, hp = self.space.decode(tuple(best["actions"]))
            text = arch_file_text(arch, hp)
            streams = self.config.student.features.streams
            if streams != FeatureConfig().streams:
                text = (f"# found with input streams {streams}: train it with --set features.streams={streams}\n"
                        + text)
            atomic.write_text(self.run_dir / "best.yaml", text)
        summary = {"students": len(self.meta["students"]), "iterations": self.meta["iteration"],
                   "best": best, "argmax": self.meta["argmax"]}  # fmt: skip
        atomic.write_text(self.run_dir / "summary.json", json.dumps(jsonable(summary), indent=2))
        atomic.write_text(self.run_dir / "controller_probabilities.json",
                          json.dumps(self.meta["probabilities"], indent=1))  # fmt: skip
        from jaxcp.search_plots import plot_search

        plot_search(self.run_dir, self.meta, self.space)
        return summary


def _pick_best(meta: dict) -> dict | None:
    """The best validated candidate: argmax candidates and students together, by validation AUC."""
    ok = [r for r in meta["argmax"] + meta["students"] if r["status"] != "failed"]
    return max(ok, key=lambda r: r["reward"]) if ok else None


def _student_record(member, iteration, arch, hp, results, counts) -> dict:
    rewards = [r.reward for r in results]
    statuses = {r.status for r in results}
    status = "failed" if statuses == {"failed"} else ("early_stopped" if "early_stopped" in statuses else "ok")
    best = max(results, key=lambda r: r.reward)
    record = {
        "id": member["id"], "iteration": iteration, "actions": member["actions"],
        "arch": to_dict(arch), "hparams": to_dict(hp),
        "reward": float(np.mean(rewards)), "rewards": rewards, "status": status,
        "best_epoch": best.best_epoch, "metrics": best.metrics,
        "params": counts.get("params"), "macs": counts.get("macs_thop"),
        "seconds_compile": results[0].seconds_compile, "seconds_train": results[0].seconds_train,
        "seconds_eval": results[0].seconds_eval,
    }  # fmt: skip
    return jsonable(record)


# --------------------------------------------------------------------------------------------------------
# Command line


class Log:
    """Progress bar on a terminal (or plain lines with --quiet / when not a TTY)."""

    def __init__(self, quiet: bool, total_students: int):
        self.quiet = quiet or not sys.stderr.isatty()
        self.total = total_students
        self.start = time.perf_counter()
        self.count = 0

    def line(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write("\r\033[K")
        print(text, flush=True)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}")

    def student(self, record: dict, index: int, per_iteration: int, best: float) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.count * max(self.total - self.count, 0)
        text = (f"iteration {record['iteration']} student {index}/{per_iteration} (id {record['id']}): "
                f"AUC {record['reward']:.3f} [{record['status']}], best so far {best:.3f}, "
                f"~{left / 60:.1f} min left")  # fmt: skip
        if self.quiet:
            print(text, flush=True)
        else:
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="jaxcp search", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quick", help="search preset name (configs/search/) or YAML path")
    parser.add_argument("--data", help="processed dataset folder (default: a generated synthetic cohort)")
    parser.add_argument("--out", help="run directory (default: runs/search-<timestamp>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a search from its run directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    return parser.parse_args(argv)


def resolve_run(args) -> tuple[SearchConfig, Path]:
    if args.resume:
        run_dir = Path(args.resume)
        resolved = run_dir / "config.yaml"
        if not resolved.is_file():
            raise InputError(f"{run_dir}: not a search run directory (no config.yaml)")
        config = from_dict(SearchConfig, load_yaml(resolved), str(resolved))
        return config, run_dir
    resolve_config_path(args.config, "search")
    overrides = list(args.set) + ([f"data={args.data}"] if args.data else [])
    config = load_search_config(args.config, overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / time.strftime("search-%Y%m%d-%H%M%S")
    if (run_dir / "config.yaml").exists():
        raise InputError(f"{run_dir}: already holds a search (use --resume {run_dir} to continue it)")
    return config, run_dir


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()  # before JAX starts its threads
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config, run_dir = resolve_run(args)
        space = load_space(resolve_config_path(config.space, "space"))
        experiment = load_experiment(config, log=print)
    except InputError as error:
        exit_with(error)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / "config.yaml", dump_yaml(config))
    enable_compilation_cache()
    total = config.first_students + config.students * (config.iterations - 1)
    log = Log(args.quiet, total)
    log.line(f"search: {config.iterations} iterations, {total} students, run directory {run_dir}")
    search = Search(config, run_dir, experiment, space, log)
    summary = search.run()
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
        print(f"best validation AUC {best['reward']:.3f}; architecture written to {run_dir / 'best.yaml'}")


if __name__ == "__main__":
    raise SystemExit(main())
