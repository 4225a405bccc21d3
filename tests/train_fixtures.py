"""A tiny synthetic cohort and a tiny architecture shared by the training, checkpoint and command tests.

Everything here is cached for the whole test process, so that test files run together generate the cohort
once and compile each training program once (the programs are cached by spec and data shapes).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import dispatch

from jaxcp.data import synth
from jaxcp.data.dataset import load_dataset
from jaxcp.data.features import FeatureConfig
from jaxcp.data.prepare import PrepareConfig, prepare_dataset
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.splits import SplitConfig
from jaxcp.data.windows import TrainPlan
from jaxcp.model.arch import Arch
from jaxcp.training import engine, students
from jaxcp.training.hparams import HParams

LAYOUT = IN_MOTION_29
WINDOW = 90  # 3 s windows: long enough to see the synthetic CP pattern (limbs moving in sync)

# Small, with what this cohort needs to be learnt quickly: the velocity stream and graph layers that reach
# 3 hops, so that one limb's movement meets another's.
TINY_ARCH = Arch(
    init_channels=16, activation="relu", attention="ja", conv="basic", dropout=0.0, multi_gcn=False,
    expand_ratio=1.0, reduct_ratio=2.0, blocks_in=1, depth_in=1, stride_in=3, scale_in=1.0,
    temporal_window_in=3, graph_distance_in=3, blocks_main=1, depth_main=1, stride_main=1, scale_main=1.0,
    temporal_window_main=3, graph_distance_main=1,
)  # fmt: skip
TINY_HPARAMS = HParams(optimizer="adam", lr=0.01, weight_decay=0.0, momentum=0.9, batch_size=16)
TINY_CONFIG = students.TrainConfig(
    epochs=2, eval_every=1, early_stop=False, window=WINDOW, hop=WINDOW, parts_positive=8, parts_negative=3,
    features=FeatureConfig(streams="V"),
)  # fmt: skip
# the same settings as `--set` overrides of `jaxcp train`
TINY_OVERRIDES = ["eval_every=1", f"window={WINDOW}", f"hop={WINDOW}", "parts_positive=8", "parts_negative=3",
                  "features.streams=V"]  # fmt: skip

_ROOT = Path(tempfile.mkdtemp(prefix="jaxcp-train-tests-"))
atexit.register(shutil.rmtree, _ROOT, True)


@functools.cache
def cohort(infants: int = 48, minutes: float = 0.5, difficulty: float = 0.0, seed: int = 3) -> Path:
    """A processed synthetic cohort (raw files in <root>/raw, processed in <root>/processed), made once."""
    root = _ROOT / f"cohort_{infants}_{minutes}_{difficulty}_{seed}"
    config = PrepareConfig(window=WINDOW, split=SplitConfig(test_fraction=0.2, val_fraction=0.3))
    synth.generate_cohort(
        root / "raw",
        layout=LAYOUT,
        infants=infants,
        minutes=minutes,
        cp_fraction=0.4,
        difficulty=difficulty,
        seed=seed,
        workers=1,
    )
    prepare_dataset(root / "raw", root / "processed", layout=LAYOUT, config=config, seed=seed, workers=1)
    return root / "processed"


@functools.cache
def tiny_data(config: students.TrainConfig = TINY_CONFIG) -> tuple[engine.TrainData, students.EvalData]:
    """The tiny cohort's training and validation splits on device."""
    data_dir = cohort()
    train_set, val_set = load_dataset(data_dir, "train"), load_dataset(data_dir, "val")
    return students.make_train_data(train_set, config), students.make_eval_data(val_set, LAYOUT, config)


def other_train_data(data: engine.TrainData, seed: int = 1) -> engine.TrainData:
    """Other training data of the same shapes and dtypes: coordinates moved and scaled by random amounts,
    the labels and the plan's rows permuted (a second cohort of the same size, as a compiler sees it)."""
    rng = np.random.default_rng(seed)
    coords = np.asarray(data.coords)
    moved = coords * rng.uniform(0.8, 1.2) + rng.normal(size=coords.shape).astype(coords.dtype)
    order = rng.permutation(len(np.asarray(data.plan.infant)))
    plan = TrainPlan(*(np.asarray(a)[order] for a in data.plan))
    labels = np.asarray(data.labels)[rng.permutation(len(np.asarray(data.labels)))]
    assert not np.array_equal(moved, coords)
    return engine.TrainData(coords=jnp.asarray(moved, coords.dtype), labels=jnp.asarray(labels), plan=plan)


class CompileCounter:
    """Counts jaxpr traces and XLA compilations reported through jax.monitoring (as a context manager)."""

    def __init__(self):
        self.events: list[str] = []

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        if event in (dispatch.JAXPR_TRACE_EVENT, dispatch.BACKEND_COMPILE_EVENT):
            self.events.append(f"{event} {kwargs.get('fun_name', '')}")

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)
