"""Latency of `jaxcp predict` for one recording: whole command (start-up included) and warm, in-process.

    python benchmarks/predict.py [--arch configs/arch/autocp_best.yaml] [--minutes 3] [--repeats 3]

Writes a synthetic recording of `--minutes`, a checkpoint of the architecture with freshly initialised
weights (the speed does not depend on the values) and its export file into a temporary folder, then times

- `python -m jaxcp.predict --checkpoint ...` and `--model FILE.jaxcp` as new processes, with an empty
  persistent compilation cache (cold) and again with the cache it filled (warm);
- `jaxcp.clinical.prediction.predict` in this process after a first call (warm latency per recording).

Prints a table and writes benchmarks/results/predict_<platform>.json (machine, versions, settings).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import jax
import numpy as np

from jaxcp.clinical import export, inference, prediction
from jaxcp.data import synth
from jaxcp.data.dataset import DataSettings
from jaxcp.data.features import FeatureConfig
from jaxcp.data.preprocess import PreprocessConfig
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.windows import HOP, WINDOW
from jaxcp.model import checkpoint
from jaxcp.nas.space import load_arch_file

RESULTS = common.RESULTS
ROOT = Path(__file__).resolve().parents[1]


def make_checkpoint(arch_file: Path, out: Path) -> Path:
    arch, hparams = load_arch_file(arch_file)
    spec = checkpoint.ModelSpec(arch, IN_MOTION_29, FeatureConfig(), WINDOW, HOP,
                                DataSettings(preprocess=PreprocessConfig()))
    variables = spec.network().init(jax.random.PRNGKey(0), np.zeros(spec.input_shape(2), np.float32), train=False)
    return checkpoint.save_model(out, variables, spec, hparams=hparams)


def run_command(args: list[str], cache: Path) -> float:
    env = dict(os.environ, JAXCP_CACHE_DIR=str(cache))
    env.pop("JAXCP_NO_CACHE", None)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jaxcp.predict", *args],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=str(ROOT / "configs" / "arch" / "autocp_best.yaml"))
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="jaxcp-bench-predict-"))
    synth.generate_cohort(tmp / "raw", infants=1, minutes=args.minutes, seed=5, workers=1)
    recording = next((tmp / "raw").glob("orgcoords_*.csv"))
    ckpt = make_checkpoint(Path(args.arch), tmp / "model")
    model_file = export.write_export(checkpoint.restore_model(ckpt), tmp / "model.jaxcp", platforms=("cpu",))
    rows = {}
    for name, flag in (
        ("checkpoint", ["--checkpoint", str(ckpt)]),
        ("exported", ["--model", str(model_file)]),
    ):
        cache = tmp / f"cache_{name}"
        argv = [*flag, str(recording), "--out", str(tmp / "out")]
        rows[f"command, {name}, cold cache"] = run_command(argv, cache)
        rows[f"command, {name}, warm cache"] = min(run_command(argv, cache) for _ in range(args.repeats))
    predictors = inference.load_predictors([ckpt])
    prediction.predict(predictors, [str(recording)], tmp / "out")
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        prediction.predict(predictors, [str(recording)], tmp / "out")
        times.append(time.perf_counter() - start)
    rows["in-process, warm (read, preprocess, windows, network, write)"] = statistics.median(times)
    frames = json.loads(next((tmp / "out").glob("*_windows.json")).read_text())
    print(
        f"{args.minutes:g}-minute recording, {len(frames['starts'])} windows, {Path(args.arch).name}, "
        f"{jax.default_backend()}"
    )
    for name, seconds in rows.items():
        print(f"  {name:<62} {seconds:6.2f} s")
    result = {**common.environment(load_before),
              "arch": Path(args.arch).name, "minutes": args.minutes, "windows": len(frames["starts"]),
              "seconds": rows}  # fmt: skip
    common.write_json(RESULTS / f"predict_{jax.default_backend()}.json", result)


if __name__ == "__main__":
    main()
