"""Rematerialisation (`remat: none | blocks | full`): same gradients, same parameters, less memory."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcp.core.errors import InputError
from jaxcp.data.features import FeatureConfig
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.model import create_model
from jaxcp.model.arch import Arch
from jaxcp.model.options import ModelOptions
from jaxcp.training import students

# an input block of two sep layers (the first strided) and frame attention: every kind of layer the remat wraps
ARCH = Arch(
    init_channels=16, activation="swish", attention="fa", conv="sep", dropout=0.0, multi_gcn=False,
    expand_ratio=1.5, reduct_ratio=1.5, blocks_in=1, depth_in=2, stride_in=2, scale_in=1.0,
    temporal_window_in=3, graph_distance_in=1, blocks_main=1, depth_main=1, stride_main=1, scale_main=1.0,
    temporal_window_main=5, graph_distance_main=1,
)  # fmt: skip
FEATURES = FeatureConfig(streams="V")
X = jax.random.normal(jax.random.PRNGKey(0), (8, 1, 30, IN_MOTION_29.num_joints, 4))
Y = jnp.arange(8) % 2


# Each program runs once on a tiny batch: LLVM's optimisations are left out (XLA's backend optimisation level
# 0), which takes 40 % off the compile time. XLA's HLO passes, where the recomputation is scheduled, and its
# buffer assignment, which the memory analysis reports, are the same: measured, the same temporary bytes for
# every setting and the same loss as at the default level (12-15 s -> 8-9 s of compiling per program).
QUICK_COMPILE = {"xla_backend_optimization_level": 0}


def init(model):
    return jax.jit(model.init, static_argnames="train")({"params": jax.random.PRNGKey(1)}, X[:2], train=False)


VARIABLES = init(create_model(ARCH, IN_MOTION_29, FEATURES))


def loss_program(remat: str):
    """The compiled (loss, BatchNorm updates), gradients of the network with `remat`, and its variables' shapes."""
    model = create_model(ARCH, IN_MOTION_29, FEATURES, options=ModelOptions(remat=remat))
    variables = VARIABLES

    def loss(params, x):
        logits, updates = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
                                      mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, Y).mean(), updates

    program = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)).lower(variables["params"], X)
    return program.compile(compiler_options=QUICK_COMPILE), jax.eval_shape(lambda: init(model))


@pytest.fixture(scope="module")
def programs():
    return {remat: loss_program(remat) for remat in ("none", "blocks", "full")}


@pytest.mark.parametrize("remat", ["blocks", "full"])
def test_remat_gives_the_same_loss_gradients_and_statistics(programs, remat):
    base, shapes = programs["none"]
    other, other_shapes = programs[remat]
    assert other_shapes == shapes  # the parameter tree (names, shapes) does not depend on the setting
    variables = VARIABLES
    (loss, updates), grads = base(variables["params"], X)
    (loss_r, updates_r), grads_r = other(variables["params"], X)
    np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
    scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads))
    for g, g_r in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r), strict=True):
        np.testing.assert_allclose(g_r, g, rtol=1e-4, atol=1e-5 * scale)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6), updates, updates_r)


def test_remat_cuts_the_temporaries_of_a_training_step(programs):
    """XLA's memory analysis of the compiled step: the recomputation is scheduled in the backward pass (a plain
    jax.checkpoint is moved forward by XLA:CPU and saves nothing), so the peak falls."""
    temp = {r: programs[r][0].memory_analysis().temp_size_in_bytes for r in programs}
    assert temp["blocks"] < 0.8 * temp["none"], temp
    assert temp["full"] < 0.5 * temp["none"], temp


def test_training_settings_reach_the_compiled_programs():
    config = students.TrainConfig(remat="full", formulation="matmul", precision="tf32")
    spec = students.program_spec(ARCH, IN_MOTION_29, 8, config)
    assert spec.options == ModelOptions(formulation="matmul", precision="tf32", remat="full")
    assert spec != dataclasses.replace(spec, options=ModelOptions())  # a different compile-cache key
    for key, value in (("remat", "all"), ("formulation", "cudnn"), ("precision", "float16")):
        with pytest.raises(InputError, match=f"{key}={value!r}"):
            students.TrainConfig(**{key: value})
