"""jaxcp against the original AutoCP student (PyTorch on CPU), measured side by side in one process.

    AUTOCP_DIR=/path/to/AutoCP python benchmarks/vs_pytorch.py [--archs best,multi_gcn,v3] [--batch 32]
        [--window 150] [--pairs 3] [--remat none|blocks|full] [--quick] [--no-memory] [--tag TAG]

Needs `torch` (not a jaxcp dependency: `pip install torch` or the `bench` extra) and a checkout of the
original AutoCP code in AUTOCP_DIR (or --autocp-dir); AutoCP's classes are imported from there at run time
and nothing of it is copied here. Without either it prints one line saying what is missing and exits 0.

Architectures (`ARCHITECTURES`): AutoCP's action ids of a student of its published search log
(`logs/nas_cp29/action_list.csv`), decoded with the choices of AutoCP's own config (`arch_2`), optionally
with decisions replaced: `best` is the paper's best (argmax_1003), `multi_gcn` the same with AutoCP's
Multi-GCN spatial layer, `v3` student 15 of the log (V3 temporal layers, spatial-temporal joint attention).
Both sides build the same network from that dict: AutoCP's `Student`, and jaxcp's `create_model` of the
`Arch` it maps to (their trainable parameter counts are recorded, and must be equal).

For each architecture, in one process with torch's threads set to `os.cpu_count()` (XLA:CPU uses every
core), OMP_WAIT_POLICY=PASSIVE (unless set: see below the imports) and the malloc settings jaxcp's commands
run with (GLIBC_TUNABLES, `jaxcp.core.runtime`; both sides; JAXCP_MALLOC=system: neither side): the same
random features (batch `--batch`, `--window` frames, 4 streams x 4 channels) and labels; after warm-up,
`--pairs` alternating pairs (PyTorch, then jaxcp) of
- a training step: PyTorch forward, cross-entropy, backward and Adam (AMSGrad, AutoCP's betas and the
  architecture's learning rate); jaxcp the engine's compiled training program (`engine.get_programs(...).epoch`
  over one batch: window sampling, augmentation, features, forward, backward and the same optimizer), so
  jaxcp's step does more work than PyTorch's;
- inference of the batch: PyTorch `eval()` under `torch.inference_mode()`, softmax; jaxcp the `predict`
  program (precomputed features, softmax).
Windows/s are medians over the pairs; `ratio` is jaxcp / PyTorch of the medians (`pair_ratios`: per pair).
The ceiling: a float32 matrix product's GFLOP/s measured by XLA on this machine, and XLA's FLOP count of
jaxcp's compiled programs per window (training step; inference), give the windows/s the machine could
reach; each side's fraction of it is its windows/s times the FLOPs per window over the GFLOP/s (the same
FLOP count for both sides: the same network). Compile seconds of jaxcp's training step and predict
program, per architecture. Peak memory: each side alone in a subprocess of this script (`--side`, the same
warm-up, steps and inference, started before this process builds the architecture), its peak RSS (VmHWM),
so neither side's allocations count for the other; a subprocess that fails (the kernel's OOM killer on a
machine whose RAM others use) leaves null.

Writes benchmarks/results/vs_pytorch_cpu[_TAG].json and a Markdown table vs_pytorch_cpu[_TAG].md.
`--quick`: batch 8, 2 pairs, memory not measured (for trying the script, not for figures).
"""

from __future__ import annotations

import os

# torch's OpenMP threads sleep at once when idle instead of spinning: with the default (spinning) policy,
# PyTorch in a process that also runs XLA's thread pool was 15 to 40 times slower on 2 cores than alone
# (measured; with PASSIVE it is faster than alone under load). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __name__ == "__main__":
    # jaxcp's commands restart with their malloc settings (jaxcp.core.runtime); this script does too, so jaxcp is
    # measured as it runs, and PyTorch beside it in the same process and environment (JAXCP_MALLOC=system:
    # neither side). The environment is recorded in the result (glibc_tunables).
    from jaxcp.core.runtime import tune_allocator

    tune_allocator(force=True)

import argparse
import ast
import csv
import ctypes
import gc
import importlib
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common
import jax
import jax.numpy as jnp
import numpy as np
import train_step
import yaml

from jaxcp.data.features import CHANNELS_PER_STREAM
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.model import Arch
from jaxcp.model.counting import complexity
from jaxcp.model.options import ModelOptions
from jaxcp.training import engine, optim

RESULTS = common.RESULTS
GB = 1e9
ACTION_LOG = Path("logs") / "nas_cp29" / "action_list.csv"
AUTOCP_CONFIG = Path("config") / "config_cp.yaml"
AUTOCP_GRAPH = {"layout": "in-motion-2022", "strategy": "distance"}  # AutoCP's config, dataset_args
STREAMS = 4
DEFAULT_OPTIONS = ModelOptions()

# name -> (AutoCP student id in the search log, AutoCP decisions replaced)
ARCHITECTURES: dict[str, tuple[int, dict]] = {
    "best": (1003, {}),
    "multi_gcn": (1003, {"multi": True}),
    "v3": (15, {}),
}

# AutoCP's decision names -> jaxcp's Arch fields
AUTOCP_NAMES = {
    "init_lay": "init_channels", "act": "activation", "att_lay": "attention", "conv_lay": "conv",
    "drop_prob": "dropout", "multi": "multi_gcn", "expand_ratio": "expand_ratio", "reduct_ratio": "reduct_ratio",
    "blocks_in": "blocks_in", "depth_in": "depth_in", "stride_in": "stride_in", "scale_in": "scale_in",
    "temp_win_in": "temporal_window_in", "graph_dist_in": "graph_distance_in", "blocks_main": "blocks_main",
    "depth_main": "depth_main", "stride_main": "stride_main", "scale_main": "scale_main",
    "temp_win_main": "temporal_window_main", "graph_dist_main": "graph_distance_main",
}  # fmt: skip
HYPER_NAMES = ("lr", "optimizers", "weight_decay", "momentum", "batch_size")


# --------------------------------------------------------------------------------------------------------
# What is needed, and the architectures (no torch needed)

def missing(autocp_dir: str | None) -> str | None:
    """What the comparison lacks (torch, the AutoCP checkout), or None when it can run."""
    lacks = []
    if importlib.util.find_spec("torch") is None:
        lacks.append("torch is not installed (pip install torch)")
    if not autocp_dir:
        lacks.append("AUTOCP_DIR is not set (a checkout of the original AutoCP code)")
    elif not (Path(autocp_dir) / "src" / "model" / "student.py").is_file():
        lacks.append(f"AUTOCP_DIR={autocp_dir} has no src/model/student.py")
    return "; ".join(lacks) or None


def logged_actions(log: Path, student_id: int) -> tuple[list[int], list[int]]:
    """(architecture, hyperparameter) action ids of one student of AutoCP's action_list.csv."""
    with open(log, newline="") as f:
        for row in csv.reader(f):
            if row and int(row[0]) == student_id:
                return list(ast.literal_eval(row[1])), list(ast.literal_eval(row[2]))
    raise ValueError(f"{log}: no student {student_id}")


def autocp_choices(config: Path) -> tuple[dict, dict]:
    """AutoCP's searched architecture (`arch_2`) and hyperparameter (`hyper`) choices, in its order."""
    data = yaml.safe_load(config.read_text())
    return data["arch_2"], data["hyper"]


def decode(choices: dict, indices: list[int]) -> dict:
    """AutoCP's decision dict of action ids: the i-th id picks from the i-th decision of its config."""
    if len(indices) != len(choices):
        raise ValueError(f"{len(indices)} action ids for {len(choices)} decisions")
    return {name: values[i] for (name, values), i in zip(choices.items(), indices, strict=True)}


def to_arch(actions: dict, variant: str = "autocp") -> Arch:
    """jaxcp's Arch of an AutoCP decision dict (AutoCP's names and spellings)."""
    fields = {AUTOCP_NAMES[k]: v for k, v in actions.items()}
    fields["conv"] = str(fields["conv"]).lower()
    for name in ("dropout", "expand_ratio", "reduct_ratio", "scale_in", "scale_main"):
        fields[name] = float(fields[name])
    return Arch(**fields, variant=variant)


def architecture(autocp_dir: Path, name: str) -> tuple[dict, dict]:
    """(AutoCP architecture dict, AutoCP hyperparameter dict) of one entry of ARCHITECTURES."""
    student_id, replaced = ARCHITECTURES[name]
    arch_ids, hyper_ids = logged_actions(autocp_dir / ACTION_LOG, student_id)
    arch_choices, hyper_choices = autocp_choices(autocp_dir / AUTOCP_CONFIG)
    return {**decode(arch_choices, arch_ids), **replaced}, decode(hyper_choices, hyper_ids)


def ceiling_fraction(windows_per_s: float, flops_per_window: float | None, gflops: float) -> float | None:
    """The share of the machine's matmul GFLOP/s that `windows_per_s` at `flops_per_window` uses."""
    return windows_per_s * flops_per_window / (gflops * GB) if flops_per_window else None


def median_ratio(a: list[float], b: list[float]) -> float:
    """median(b) / median(a): how many times faster b is, for two lists of windows/s."""
    return statistics.median(b) / statistics.median(a)


# --------------------------------------------------------------------------------------------------------
# The PyTorch side: AutoCP's own Student, imported from AUTOCP_DIR

def build_torch_student(autocp_dir: Path, actions: dict, hyper: dict, frames: int):
    """AutoCP's Student for `actions` (in-motion-2022 graph, 4 streams of 4 channels), as AutoCP's
    initializer builds it for cp29."""
    import torch

    if str(autocp_dir) not in sys.path:
        sys.path.insert(0, str(autocp_dir))
    student = importlib.import_module("src.model.student")
    graph = importlib.import_module("src.graph.graph").Graph(AUTOCP_GRAPH["layout"],
                                                             strategy=AUTOCP_GRAPH["strategy"])
    args = argparse.Namespace(old_sp=False, dataset="cp29")
    shape = (STREAMS, CHANNELS_PER_STREAM, frames, IN_MOTION_29.num_joints, 1)
    kwargs = {"data_shape": shape, "num_class": 2, "A": torch.Tensor(graph.A), "parts": graph.parts,
              "bias": True, "edge": True, "residual": True}
    return student.Student(dict(actions), None, dict(hyper), None, 0, args, **kwargs)


def torch_optimizer(model, hyper: dict, autocp_dir: Path):
    """AutoCP's optimizer for the student: its class by name, fixed args from AutoCP's config."""
    import torch

    name = hyper["optimizers"]
    fixed = dict(yaml.safe_load((autocp_dir / AUTOCP_CONFIG).read_text())["optimizer_args"][name])
    if "betas" in fixed:
        fixed["betas"] = tuple(fixed["betas"])
    if name.lower() not in ("adam", "adamw"):
        fixed["momentum"] = hyper["momentum"]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name.lower()]
    return cls(model.parameters(), lr=hyper["lr"], weight_decay=hyper["weight_decay"], **fixed)


def torch_side(autocp_dir: Path, actions: dict, hyper: dict, features: np.ndarray, labels: np.ndarray):
    """(train_step, infer, trainable parameters) of AutoCP's student on these features (N, I, T, V, C)."""
    import torch

    model = build_torch_student(autocp_dir, actions, hyper, features.shape[2])
    opt = torch_optimizer(model, hyper, autocp_dir)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(features).permute(0, 1, 4, 2, 3).unsqueeze(-1).contiguous()  # (N, I, C, T, V, M)
    y = torch.from_numpy(labels.astype(np.int64))

    def train():
        model.train()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def infer():
        model.eval()
        with torch.inference_mode():
            return torch.softmax(model(x), dim=-1)[:, 1].numpy()

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train, infer, params


# --------------------------------------------------------------------------------------------------------
# The jaxcp side: the engine's compiled programs

def jaxcp_side(arch: Arch, hyper: dict, features: np.ndarray, options: ModelOptions = DEFAULT_OPTIONS):
    """(train_step, infer, facts) with jaxcp's compiled training and predict programs for one student.
    facts: compile seconds, XLA's FLOPs per window of both programs, trainable parameters."""
    batch, window = features.shape[0], features.shape[2]
    spec = train_step.make_spec(arch, batch, window, batch, options)
    programs = engine.get_programs(spec)
    hp = engine.stack_students([optim.make_hparams(hyper["optimizers"].lower(), hyper["lr"],
                                                   hyper["weight_decay"], hyper["momentum"])])
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    init, init_s = train_step.compile_timed(programs.init, keys, hp)
    state = {"s": init(keys, hp)}
    data = train_step.make_data(batch, 1, window)
    lr = jnp.float32(1.0)
    epoch, epoch_s = train_step.compile_timed(programs.epoch, state["s"], keys, lr, data)
    x = jnp.asarray(features)
    predict, predict_s = train_step.compile_timed(programs.predict, state["s"], x)
    train_flops, infer_flops = train_step.program_flops(epoch), train_step.program_flops(predict)

    def train():
        state["s"], metrics = epoch(state["s"], keys, lr, data)
        return float(metrics["loss"][0])

    def infer():
        return np.asarray(predict(state["s"], x))

    params = complexity(arch, IN_MOTION_29, frames=window, streams=STREAMS, xla=False)["params"]
    facts = {"compile_init_s": init_s, "compile_train_step_s": epoch_s, "compile_predict_s": predict_s,
             "train_flops_per_window": train_flops / batch if train_flops else None,
             "infer_flops_per_window": infer_flops / batch if infer_flops else None, "params": params}
    return train, infer, facts


# --------------------------------------------------------------------------------------------------------
# Measurement

def timed_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(a, b, pairs: int) -> tuple[list[float], list[float]]:
    """Seconds of `pairs` alternating calls a, b, a, b, ... (each called once before, as warm-up)."""
    a(), b()
    times_a, times_b = [], []
    for _ in range(pairs):
        times_a.append(timed_call(a))
        times_b.append(timed_call(b))
    return times_a, times_b


def batch_data(batch: int, window: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random features (N, streams, T, V, 4) and labels, the same for both sides."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(batch, STREAMS, window, IN_MOTION_29.num_joints, CHANNELS_PER_STREAM))
    return features.astype(np.float32), (np.arange(batch) % 2).astype(np.int32)


def compare(autocp_dir: Path, name: str, batch: int, window: int, pairs: int, gflops: float,
            options: ModelOptions = DEFAULT_OPTIONS) -> dict:
    """One architecture: both sides built, then alternating training and inference pairs."""
    actions, hyper = architecture(autocp_dir, name)
    arch = to_arch(actions)
    features, labels = batch_data(batch, window)
    t_train, t_infer, t_params = torch_side(autocp_dir, actions, hyper, features, labels)
    j_train, j_infer, facts = jaxcp_side(arch, hyper, features, options)
    train_t, train_j = alternate(t_train, j_train, pairs)
    infer_t, infer_j = alternate(t_infer, j_infer, pairs)
    rates = {key: [batch / s for s in times] for key, times in
             (("torch_train", train_t), ("jaxcp_train", train_j), ("torch_infer", infer_t),
              ("jaxcp_infer", infer_j))}  # fmt: skip
    row = {"arch": name, "autocp_student": ARCHITECTURES[name][0], "autocp_actions": actions,
           "params_torch": t_params, "params_jaxcp": facts.pop("params"), **facts,
           "train_call_s": {"torch": train_t, "jaxcp": train_j}, "infer_call_s": {"torch": infer_t, "jaxcp": infer_j}}
    for kind in ("train", "infer"):
        torch_rate, jax_rate = rates[f"torch_{kind}"], rates[f"jaxcp_{kind}"]
        flops = facts[f"{kind}_flops_per_window"]
        row[kind] = {"torch_windows_per_s": statistics.median(torch_rate),
                     "jaxcp_windows_per_s": statistics.median(jax_rate),
                     "ratio": median_ratio(torch_rate, jax_rate),
                     "pair_ratios": [j / t for t, j in zip(torch_rate, jax_rate, strict=True)],
                     "ceiling_windows_per_s": gflops * GB / flops if flops else None,
                     "torch_ceiling_fraction": ceiling_fraction(statistics.median(torch_rate), flops, gflops),
                     "jaxcp_ceiling_fraction": ceiling_fraction(statistics.median(jax_rate), flops, gflops)}
    return row


def side_alone(args: argparse.Namespace) -> dict:
    """One side of one architecture, alone in this process: warm-up, steps, inference, then peak RSS."""
    autocp_dir = Path(args.autocp_dir)
    actions, hyper = architecture(autocp_dir, args.archs)
    features, labels = batch_data(args.batch, args.window)
    if args.side == "torch":
        set_torch_threads()
        train, infer, _ = torch_side(autocp_dir, actions, hyper, features, labels)
    else:
        train, infer, _ = jaxcp_side(to_arch(actions), hyper, features, ModelOptions(remat=args.remat))
    for _ in range(2):
        train(), infer()
    return {"side": args.side, "arch": args.archs, "peak_rss_bytes": peak_rss()}


def peak_rss() -> int:
    """This process's peak resident set in bytes: VmHWM of /proc/self/status (ru_maxrss where there is no
    /proc). Not ru_maxrss on Linux: it survives exec, so a child would report its parent's peak at fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(args: argparse.Namespace, name: str, side: str) -> int | None:
    """Peak RSS in bytes of `side` alone for architecture `name`, from a subprocess of this script."""
    command = [sys.executable, __file__, "--side", side, "--archs", name, "--batch", str(args.batch),
               "--window", str(args.window), "--autocp-dir", str(args.autocp_dir), "--remat", args.remat]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"  memory of {side} / {name} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(lines[-1])["peak_rss_bytes"]


def release_memory() -> None:
    """Drop the compiled programs and return freed heap to the system (before the next architecture's
    memory subprocesses: the machine's RAM is shared)."""
    engine.get_programs.cache_clear()
    jax.clear_caches()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def set_torch_threads() -> dict:
    """torch's intra-op threads = the machine's cores (XLA:CPU's default); the counts both sides use."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "xla_cpu_cores": os.cpu_count(), "torch": torch.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "")}


# --------------------------------------------------------------------------------------------------------
# Output

def markdown(rows: list[dict]) -> str:
    """The comparison as a Markdown table (one row per architecture)."""
    def pct(x):
        return f"{x:.0%}" if x is not None else "n/a"

    def gb(x):
        return f"{x / GB:.2f}" if x else "n/a"

    lines = ["| architecture | training w/s PyTorch | jaxcp | ratio | inference w/s PyTorch | jaxcp | ratio | "
             "of the ceiling, training (PyTorch / jaxcp) | inference | peak RSS GB (PyTorch / jaxcp) | "
             "compile s (training step) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, i = r["train"], r["infer"]
        lines.append(
            f"| {r['arch']} | {t['torch_windows_per_s']:.2f} | {t['jaxcp_windows_per_s']:.2f} | {t['ratio']:.2f}× | "
            f"{i['torch_windows_per_s']:.1f} | {i['jaxcp_windows_per_s']:.1f} | {i['ratio']:.2f}× | "
            f"{pct(t['torch_ceiling_fraction'])} / {pct(t['jaxcp_ceiling_fraction'])} | "
            f"{pct(i['torch_ceiling_fraction'])} / {pct(i['jaxcp_ceiling_fraction'])} | "
            f"{gb(r.get('peak_rss_torch_bytes'))} / {gb(r.get('peak_rss_jaxcp_bytes'))} | "
            f"{r['compile_train_step_s']:.1f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autocp-dir", default=os.environ.get("AUTOCP_DIR"),
                        help="checkout of the original AutoCP code (default: $AUTOCP_DIR)")
    parser.add_argument("--archs", default=",".join(ARCHITECTURES),
                        help=f"comma-separated, of {list(ARCHITECTURES)}")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=150)
    parser.add_argument("--pairs", type=int, default=3, help="alternating (PyTorch, jaxcp) pairs per measure")
    parser.add_argument("--quick", action="store_true", help="batch 8, 2 pairs, no memory measurement")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--remat", default="none", choices=("none", "blocks", "full"),
                        help="jaxcp's rematerialisation setting (jaxcp.model.options; default none)")
    parser.add_argument("--tag", default="", help="suffix of the result files: vs_pytorch_cpu[_TAG].json")
    parser.add_argument("--side", choices=("torch", "jaxcp"), help=argparse.SUPPRESS)  # memory subprocess
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.pairs, args.no_memory = 8, 2, True
    unknown = [n for n in args.archs.split(",") if n not in ARCHITECTURES]
    if unknown:
        parser.error(f"--archs: unknown {unknown}; choose from {list(ARCHITECTURES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lacks = missing(args.autocp_dir)
    if lacks:
        print(f"vs_pytorch: nothing measured: {lacks}")
        return 0
    if args.side:
        print(json.dumps(side_alone(args)), flush=True)
        return 0
    load_before = os.getloadavg()
    threads = set_torch_threads()
    gflops = train_step.matmul_gflops()
    print(f"float32 matrix product (XLA) {gflops:.0f} GFLOP/s; threads {threads}", flush=True)
    rows, names = [], args.archs.split(",")
    for name in names:
        # memory first, each side alone in a subprocess, while this process holds no compiled programs
        memory = {} if args.no_memory else {f"peak_rss_{side}_bytes": peak_memory(args, name, side)
                                            for side in ("torch", "jaxcp")}
        row = {**compare(Path(args.autocp_dir), name, args.batch, args.window, args.pairs, gflops,
                         ModelOptions(remat=args.remat)), **memory}
        release_memory()
        rows.append(row)
        print(markdown(rows[-1:]).splitlines()[-1] if len(rows) > 1 else markdown(rows), end="", flush=True)
        print()
        # after every architecture, so that a run cut short (time, memory) keeps what it measured
        suffix = f"_{args.tag}" if args.tag else ""
        result = {**common.environment(load_before), **threads, "batch": args.batch, "window": args.window,
                  "pairs": args.pairs, "remat": args.remat, "matmul_gflops": gflops,
                  "architectures_done": f"{len(rows)} of {len(names)}", "rows": rows}
        common.write_json(RESULTS / f"vs_pytorch_cpu{suffix}.json", result)
        common.write_text(RESULTS / f"vs_pytorch_cpu{suffix}.md", markdown(rows))
    print(f"wrote {RESULTS / f'vs_pytorch_cpu{suffix}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
