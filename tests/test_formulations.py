"""Layer formulations ("matmul" vs "conv") and matmul precision: same parameters, values, gradients, counts.

Parity tolerance between the formulations (float32): rtol 1e-4, atol 1e-5 x the largest magnitude in the
compared tree (outputs, or all gradients): gradients that are exactly 0 in exact arithmetic (a bias before a
training-mode BatchNorm) come out as rounding noise of the other gradients' size.
Per layer: training mode compares outputs, batch statistics and gradients (w.r.t. params and input),
evaluation mode the outputs (its products are the same ones; its gradients would double the compile time).
Programs are compiled at XLA's backend optimisation level 0 (`compiled`): 2-3x faster to compile, the same HLO.
"""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcp.data.features import FeatureConfig
from jaxcp.data.skeleton import COCO_17
from jaxcp.model import create_model, ops
from jaxcp.model.arch import Arch
from jaxcp.model.attention import ATTENTION_LAYERS, AttentionLayer
from jaxcp.model.graph import MultiGCNLayer, SpatialGraphLayer
from jaxcp.model.ops import DepthwiseConv, Pointwise, TemporalConv, count_ops, dense
from jaxcp.model.options import ModelOptions, current, using
from jaxcp.model.temporal import TEMPORAL_LAYERS

KEY = jax.random.key(0, impl="rbg")
RTOL, ATOL = 1e-4, 1e-5
BF16_RTOL = 0.05  # bfloat16 vs float32 network logits: |diff| <= 0.05 x max |logit| (measured ~0.01)
FORMULATIONS = ("matmul", "conv")


def rand(shape, seed=0):
    """Standard normal float32 values (numpy: no compilation per shape)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def assert_close(got, want, rtol=RTOL, atol=ATOL):
    """Leaf by leaf, with atol scaled by the largest magnitude in `want` (at least 1)."""
    leaves = jax.tree.leaves(want)
    scale = max([1.0] + [float(np.max(np.abs(w))) for w in leaves if np.size(w)])
    for g, w in zip(jax.tree.leaves(got), leaves, strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale)


def compiled(fn, *args):
    """fn(*args) through one jit compilation at backend optimisation level 0 (compiles faster)."""
    options = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    return jax.jit(fn).lower(*args).compile(options)(*args)


def random_variables(module, x, std=0.5, **kwargs):
    """The module's variables (traced, not compiled): params ~ N(0, std^2) except BatchNorm scales ~ U(0.5, 1.5)
    (a scale near 0 makes a nearly constant channel whose next training-mode BatchNorm amplifies rounding);
    running means ~ N(0, std^2), running variances ~ U(0.5, 1.5)."""
    tree = jax.eval_shape(lambda x: module.init(KEY, x, **kwargs), x)
    rng = np.random.default_rng(1)

    def leaf(path, a):
        if path[-1].key in ("scale", "var"):
            return jnp.asarray(rng.uniform(0.5, 1.5, a.shape), jnp.float32)
        return jnp.asarray(std * rng.standard_normal(a.shape), jnp.float32)

    return {kind: jax.tree_util.tree_map_with_path(leaf, tree[kind]) for kind in tree}


def outputs_and_gradients(module, variables, x, *, has_mode=True):
    """{formulation: {mode: (output, new batch stats, d loss / d (params, x) or () in eval mode)}}, ONE program."""
    weights = rand(jax.eval_shape(lambda x: module.apply(variables, x, **({"train": False} if has_mode else {})),
                                  x).shape, 99)

    def run(variables, x):
        results = {}
        for formulation in FORMULATIONS:
            with using(ModelOptions(formulation=formulation)):
                results[formulation] = {mode: _one(module, variables, x, weights, mode, has_mode)
                                        for mode in ((False, True) if has_mode else (None,))}
        return results

    return compiled(run, variables, x)


def _one(module, variables, x, weights, train, has_mode):
    kwargs = {"train": train} if has_mode else {}
    others = {k: v for k, v in variables.items() if k != "params"}

    def loss(params, x):
        y, state = module.apply({"params": params, **others}, x, mutable=["batch_stats"], **kwargs)
        return jnp.sum(weights * jnp.tanh(y)), (y, state)

    if train is False:  # evaluation: outputs only (the layers' products are those of training mode)
        _, (y, state) = loss(variables["params"], x)
        return y, state, ()
    (_, (y, state)), grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(variables["params"], x)
    return y, state, grads


def assert_formulations_agree(module, x, *, has_mode=True, **init_kwargs):
    variables = random_variables(module, x, **init_kwargs)
    results = outputs_and_gradients(module, variables, x, has_mode=has_mode)
    for mode in results["matmul"]:
        for part in range(3):  # outputs, batch statistics, gradients
            assert_close(results["conv"][mode][part], results["matmul"][mode][part])
    y = jax.tree.leaves(results["matmul"])[0]
    assert float(jnp.abs(y).max()) > 0
    grads = jax.tree.leaves(results["matmul"][True if has_mode else None][2])
    assert all(g.shape for g in grads) and any(float(jnp.abs(g).max()) > 0 for g in grads)


# --------------------------------------------------------------------------------------------------------
# Every layer type: same outputs, batch statistics and gradients under both formulations

PRIMITIVES = {
    "temporal_w7_s3": (TemporalConv(6, 7, stride=3), (2, 10, 3, 4)),
    "temporal_no_joint_axis": (TemporalConv(1, 9), (2, 10, 2)),  # frame attention's (N, T, 2) input
    "depthwise_w3_s2": (DepthwiseConv(3, stride=2), (2, 9, 3, 5)),
    "pointwise_grouped_strided": (Pointwise(8, stride=2, groups=4), (2, 7, 3, 8)),
}  # plain 1x1 convs (`dense`) are in every layer below


@pytest.mark.parametrize("name", PRIMITIVES)
def test_primitives_agree(name):
    module, shape = PRIMITIVES[name]
    assert_formulations_agree(module, rand(shape, 1), has_mode=False)


def test_dense_agrees_with_a_plain_product_under_both_formulations():
    x, kernel = rand((3, 4, 6), 2), rand((6, 5), 3)
    want = np.einsum("abi,io->abo", np.asarray(x, np.float64), np.asarray(kernel, np.float64))
    for formulation in FORMULATIONS:
        with using(ModelOptions(formulation=formulation)):
            got = jax.jit(dense)(x, kernel)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


TEMPORAL_CASES = [(name, variant) for name in TEMPORAL_LAYERS for variant in ("autocp", "corrected")
                  if variant == "autocp" or name in ("v3", "shuffle")]  # the variants differ only there


@pytest.mark.parametrize("name, variant", TEMPORAL_CASES)
def test_temporal_layers_agree(name, variant):
    layer = TEMPORAL_LAYERS[name](5, stride=2, activation="swish", expand_ratio=2.0, reduct_ratio=2.0,
                                  variant=variant)
    # batch 4: V3's squeeze-excitation BatchNorm normalises over the batch alone, ill-conditioned at 2
    assert_formulations_agree(layer, rand((4, 9, 3, 8), 4), train=False)


SPATIAL_CASES = {
    "graph_aggregate_first": SpatialGraphLayer(8, 2, COCO_17, "relu"),  # C_in < C_out
    "graph_conv_first": SpatialGraphLayer(4, 1, COCO_17, "relu"),
    "multi_gcn": MultiGCNLayer(6, COCO_17, "hardswish"),
}


@pytest.mark.parametrize("name", SPATIAL_CASES)
def test_spatial_layers_agree(name):
    assert_formulations_agree(SPATIAL_CASES[name], rand((2, 5, 17, 6), 5), train=False)


@pytest.mark.parametrize("kind", ATTENTION_LAYERS)
def test_attention_layers_agree(kind):
    layer = AttentionLayer(kind, "relu6", 2.0, COCO_17)
    assert_formulations_agree(layer, rand((2, 6, 17, 8), 6), train=False)


# --------------------------------------------------------------------------------------------------------
# The whole network: parameters, values, gradients and counts do not depend on the options

def test_initial_values_are_identical():
    """Every module that creates parameters in a formulation-dependent primitive: same initial values."""
    x, xs = rand((2, 9, 17, 8), 8), rand((2, 5, 17, 6), 9)
    modules = [(module, x) for module in (TemporalConv(6, 5, stride=2), DepthwiseConv(3), Pointwise(4, groups=2))]
    modules += [(module, xs) for module in SPATIAL_CASES.values()]

    def run(x, xs):
        inits = {}
        for f in FORMULATIONS:
            with using(ModelOptions(formulation=f)):
                inits[f] = [module.init(KEY, a, **({"train": False} if module in SPATIAL_CASES.values() else {}))
                            for module, a in modules]
        return inits

    inits = compiled(run, x, xs)
    chex.assert_trees_all_equal(inits["matmul"], inits["conv"])
    assert float(jnp.abs(inits["conv"][0]["params"]["kernel"]).max()) > 0


def tiny_arch(**changes) -> Arch:
    base = dict(init_channels=16, activation="swish", attention="fa", conv="sep", dropout=0.0,
                multi_gcn=False, expand_ratio=1.5, reduct_ratio=2.0, blocks_in=1, depth_in=1, stride_in=2,
                scale_in=1.0, temporal_window_in=5, graph_distance_in=2, blocks_main=1, depth_main=1,
                stride_main=1, scale_main=1.0, temporal_window_main=3, graph_distance_main=1)
    return Arch(**{**base, **changes})


def network(formulation="auto", precision="float32", **changes):
    return create_model(tiny_arch(**changes), COCO_17, FeatureConfig(streams="J"),
                        options=ModelOptions(formulation=formulation, precision=precision))


X = rand((2, 1, 12, 17, 4), 7)


def network_step(model):
    """(logits, new batch stats, gradients w.r.t. params and input) of a training-mode loss."""
    def loss(params, stats, x):
        logits, state = model.apply({"params": params, "batch_stats": stats}, x, train=True,
                                    mutable=["batch_stats"])
        return jnp.sum(logits * jnp.array([1.0, -2.0])), (logits, state)

    def step(variables, x):
        (_, aux), grads = jax.value_and_grad(loss, (0, 2), has_aux=True)(variables["params"],
                                                                         variables["batch_stats"], x)
        return aux, grads

    return step


def test_network_parameters_values_and_gradients_agree():
    """The same variable tree and, from random variables, the same training step."""
    models = {f: network(f) for f in FORMULATIONS}
    trees = {f: jax.eval_shape(lambda x, m=m: m.init(KEY, x, train=False), X) for f, m in models.items()}
    assert jax.tree.structure(trees["matmul"]) == jax.tree.structure(trees["conv"])
    chex.assert_trees_all_equal_shapes_and_dtypes(trees["matmul"], trees["conv"])
    variables = random_variables(models["matmul"], X, std=0.2, train=False)
    results = compiled(lambda v, x: {f: network_step(m)(v, x) for f, m in models.items()}, variables, X)
    assert_close(results["conv"][0], results["matmul"][0])  # logits, batch statistics
    assert_close(results["conv"][1], results["matmul"][1])  # gradients w.r.t. params and input
    assert float(jnp.abs(results["matmul"][1][1]).max()) > 0  # input gradient flows


@pytest.mark.parametrize("multi_gcn", [True, False])  # the spatial layer of the main block
def test_counts_do_not_depend_on_the_formulation(multi_gcn):
    counts = {}
    for f in FORMULATIONS:
        model = network(f, multi_gcn=multi_gcn)
        with count_ops() as records:
            jax.eval_shape(lambda x, model=model: model.init(KEY, x, train=False), X[:1])
        counts[f] = records
    assert counts["matmul"] == counts["conv"] and len(counts["conv"]) > 20
    assert sum(r.macs for r in counts["conv"]) > 0


def test_auto_is_matmul_on_cpu_and_conv_elsewhere():
    assert ModelOptions().resolved("cpu").formulation == "matmul"
    assert ModelOptions().resolved("gpu").formulation == "conv"
    assert ModelOptions().resolved("tpu").formulation == "conv"
    assert ModelOptions(formulation="conv").resolved("cpu").formulation == "conv"
    assert jax.default_backend() == "cpu"
    with using(ModelOptions()):
        assert current().formulation == "matmul"
    # what the primitives actually traced: no convolution op under "auto" on CPU, some under "conv"
    assert "stablehlo.convolution" not in forward_text(network("auto"))
    assert "stablehlo.convolution" in forward_text(network("conv"))


def test_bad_option_is_refused():
    with pytest.raises(ValueError, match="formulation"):
        ModelOptions(formulation="cudnn")
    with pytest.raises(ValueError, match="precision"):
        ModelOptions(precision="float16")


# --------------------------------------------------------------------------------------------------------
# Precision: reaches every product of the forward AND backward pass; bfloat16 stays close

def forward_text(model):
    variables = jax.eval_shape(lambda x: model.init(KEY, x, train=False), X)
    return jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, X).as_text()


def backward_text(model):
    variables = jax.eval_shape(lambda x: model.init(KEY, x, train=False), X)
    return jax.jit(network_step(model)).lower(variables, X).as_text()


PRODUCT = re.compile(r"stablehlo\.(dot_general|convolution)\b.*")
OPERANDS = re.compile(r":\s*\((tensor<[^>]*>),\s*(tensor<[^>]*>)\)\s*->\s*(tensor<[^>]*>)")


def products(text):
    """[(line, (lhs type, rhs type, result type))] of every matrix product and convolution."""
    lines = [m.group(0) for m in PRODUCT.finditer(text)]
    return [(line, OPERANDS.search(line).groups()) for line in lines]


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_precision_reaches_every_product_of_the_backward_pass(formulation, monkeypatch):
    # lowered (not run) as on a GPU: XLA:CPU cannot run bfloat16 x bfloat16 -> float32 products
    monkeypatch.setattr(ops, "native_bfloat16", lambda: True)
    forward = len(products(forward_text(network(formulation, "bfloat16"))))
    for precision, check in (
        ("float32", lambda line, types: "HIGHEST" in line and all("xf32>" in t for t in types)),
        ("tf32", lambda line, types: "HIGH" in line and "HIGHEST" not in line),
        ("bfloat16", lambda line, types: "xbf16>" in types[0] and "xbf16>" in types[1]),
    ):
        found = products(backward_text(network(formulation, precision)))
        assert len(found) >= 2 * forward > 0, (precision, len(found), forward)  # the backward's products too
        bad = [line for line, types in found if not check(line, types)]
        assert not bad, (precision, bad[:3])
    # float32 results are float32 in every mode; bfloat16 sums the forward products in float32
    found = products(forward_text(network(formulation, "bfloat16")))
    assert all("xf32>" in types[2] for _, types in found)


def test_bfloat16_is_close_to_float32_and_tf32_equals_float32_on_cpu():
    variables = random_variables(network(), X, std=0.2, train=False)
    logits = compiled(lambda v, x: {p: network("matmul", p).apply(v, x, train=False)
                                    for p in ("float32", "tf32", "bfloat16")}, variables, X)
    np.testing.assert_array_equal(logits["tf32"], logits["float32"])
    scale = float(jnp.abs(logits["float32"]).max())
    diff = float(jnp.abs(logits["bfloat16"] - logits["float32"]).max())
    assert 0 < diff <= BF16_RTOL * scale, (diff, scale)
