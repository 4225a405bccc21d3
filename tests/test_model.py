"""The candidate network: primitives against lax convolutions and numpy, layers, variants, whole networks."""

from __future__ import annotations

import dataclasses
import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import unfreeze

from jaxcp.data.features import FeatureConfig
from jaxcp.data.skeleton import COCO_17, IN_MOTION_29
from jaxcp.model import create_model
from jaxcp.model.arch import Arch
from jaxcp.model.attention import (
    AttentionLayer,
    ChannelAttention,
    FrameAttention,
    JointAttention,
    PartAttention,
    STJointAttention,
)
from jaxcp.model.graph import MultiGCNLayer, SpatialGraphConv, SpatialGraphLayer, per_frame_product
from jaxcp.model.network import Block, InputStream, InputStreams
from jaxcp.model.ops import (
    BatchNorm,
    DepthwiseConv,
    Pointwise,
    TemporalConv,
    batch_norm_train,
    dense,
    output_frames,
)
from jaxcp.model.plan import block_frames, input_blocks, input_stream_channels, main_blocks
from jaxcp.model.temporal import TEMPORAL_LAYERS, BasicTemporal, ShuffleTemporal, V3Temporal, channel_shuffle
from jaxcp.nas.space import DEFAULT_SPACE, load_arch_file, load_space

BEST_FILE = DEFAULT_SPACE.parents[1] / "arch" / "autocp_best.yaml"
KEY = jax.random.key(0, impl="rbg")  # compiles faster than threefry inside jit


def rand(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


def small_arch(**changes) -> Arch:
    """A small candidate of the space (plus any changes)."""
    base = dict(init_channels=16, activation="relu", attention="ca", conv="basic", dropout=0.0,
                multi_gcn=False, expand_ratio=1.0, reduct_ratio=1.0, blocks_in=1, depth_in=1, stride_in=1,
                scale_in=1.0, temporal_window_in=3, graph_distance_in=1, blocks_main=1, depth_main=1,
                stride_main=1, scale_main=1.0, temporal_window_main=3, graph_distance_main=1)
    return Arch(**{**base, **changes})


def shapes(tree):
    return jax.tree.map(lambda a: a.shape, unfreeze(tree))


def init(module, *args, **kwargs):
    """(output, variables) of `module.init_with_output`, as one compiled program (eager would compile
    every operation separately, which is much slower)."""
    return jax.jit(lambda *a: module.init_with_output(KEY, *a, **kwargs))(*args)


def apply(module, variables, *args, **kwargs):
    return jax.jit(lambda v, *a: module.apply(v, *a, **kwargs))(variables, *args)


# --------------------------------------------------------------------------------------------------------
# Primitives equal the convolutions they stand for

def lax_conv(x, kernel_hwio, stride, pad, groups=1):
    """Reference: NHWC convolution with H = time, W = joints."""
    return jax.lax.conv_general_dilated(x, kernel_hwio, (stride, 1), ((pad, pad), (0, 0)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=groups,
                                        precision=jax.lax.Precision.HIGHEST)


def random_params(module, *args, seed=0, **kwargs):
    """Random parameters with the module's shapes (no compilation)."""
    tree = jax.eval_shape(lambda: module.init(KEY, *args, **kwargs))["params"]
    leaves, treedef = jax.tree.flatten(tree)
    return jax.tree.unflatten(treedef, [rand(leaf.shape, seed + i) for i, leaf in enumerate(leaves)])


def compare_all(cases):
    """[(module, params, x, reference(params, x))] -> [(got, want)], computed in one compiled program."""
    def run(all_params, x):
        return [(module.apply({"params": p}, x), reference(p, x))
                for (module, _, _, reference), p in zip(cases, all_params, strict=True)]

    return jax.jit(run)([params for _, params, _, _ in cases], cases[0][2])


def test_im2col_temporal_conv_equals_lax_conv():
    x = rand((2, 11, 5, 6))
    cases = []
    for window in (3, 5, 7, 9):
        for stride in (1, 2, 3):
            conv = TemporalConv(4, window, stride)

            def reference(p, x, stride=stride, window=window):  # kernel (k, C_in, C_out) -> HWIO
                return lax_conv(x, p["kernel"][:, None], stride, (window - 1) // 2) + p["bias"]

            cases.append((conv, random_params(conv, x, seed=window + stride), x, reference))
    for (conv, _, _, _), (got, want) in zip(cases, compare_all(cases), strict=True):
        assert got.shape == (2, -(-11 // conv.stride), 5, 4) == want.shape
        assert output_frames(11, conv.window, conv.stride) == got.shape[1]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_depthwise_conv_equals_grouped_lax_conv():
    x = rand((2, 10, 5, 6), 1)
    cases = []
    for window in (3, 5, 7):
        for stride in (1, 2, 3):
            conv = DepthwiseConv(window, stride)

            def reference(p, x, stride=stride, window=window):  # (k, C) -> HWIO (k, 1, 1, C), groups C
                return lax_conv(x, p["kernel"][:, None, None, :], stride, (window - 1) // 2, 6) + p["bias"]

            cases.append((conv, random_params(conv, x, seed=window + stride), x, reference))
    for got, want in compare_all(cases):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pointwise_strided_and_grouped_equal_lax_conv():
    x = rand((2, 7, 5, 8), 3)
    cases = []
    for stride, groups in ((1, 1), (2, 1), (3, 4), (1, 2)):
        conv = Pointwise(12, stride=stride, groups=groups)

        def reference(p, x, stride=stride, groups=groups):
            k = p["kernel"]
            if groups > 1:  # (g, C_in / g, C_out / g) -> HWIO (1, 1, C_in / g, C_out)
                k = jnp.concatenate(list(k), axis=-1)
            return lax_conv(x, k[None, None], stride, 0, groups=groups) + p["bias"]

        cases.append((conv, random_params(conv, x, seed=stride + groups), x, reference))
    for got, want in compare_all(cases):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cin, cout", [(4, 8), (8, 4)])  # aggregate-first and conv-first paths
def test_graph_conv_equals_numpy_reference(cin, cout):
    x = rand((2, 3, 29, cin), 4)
    conv = SpatialGraphConv(cout, 3, IN_MOTION_29)
    params = dict(jax.eval_shape(lambda: conv.init(KEY, x))["params"])
    params["edge_importance"] = 1 + 0.5 * rand(params["edge_importance"].shape, 5)
    params["bias"] = rand(params["bias"].shape, 6)
    params["kernel"] = rand(params["kernel"].shape, 22)
    got = apply(conv, {"params": params}, x)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    graph = IN_MOTION_29.adjacency()[:3] * p["edge_importance"]
    z = (np.asarray(x, np.float64) @ p["kernel"] + p["bias"]).reshape(2, 3, 29, 3, cout)
    want = np.einsum("ntvkc,kvw->ntwc", z, graph)  # y[w] = sum_k sum_v z_k[v] (A_k * E_k)[v, w]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_per_frame_graph_product_matches_autodiff_and_moves_no_frames():
    frames, matrix = rand((60, 12, 16), 30), rand((7, 12), 31)  # 60 frames of (12 joints x slices, 16 channels)
    cotangent = rand((60, 7, 16), 32)

    def einsum_product(m, f):
        return jnp.einsum("wj,bjc->bwc", m, f, precision=jax.lax.Precision.HIGHEST)

    got, got_vjp = jax.vjp(per_frame_product, matrix, frames)
    want, want_vjp = jax.vjp(einsum_product, matrix, frames)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_vjp(cotangent), want_vjp(cotangent), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)
    # forward and backward: no transpose or copy of an array as large as the frames (the einsum's layout changes)
    hlo = jax.jit(lambda m, f: jax.vjp(per_frame_product, m, f)[1](cotangent)).lower(matrix, frames).compile()
    moved = [line for line in hlo.as_text().splitlines()
             if re.search(r"= f32\[[\d,]+\]\S* (transpose|copy)\(", line)
             and np.prod([int(d) for d in re.search(r"f32\[([\d,]+)\]", line).group(1).split(",")]) >= frames.size]
    assert not moved, moved


def test_multi_gcn_equals_numpy_reference():
    c, k, rel = 6, 4, 3
    x = rand((2, 5, 29, c), 7)
    layer = MultiGCNLayer(c, IN_MOTION_29, "swish")
    variables = jax.eval_shape(lambda: layer.init(KEY, x, train=False))
    params = {k: v if k in ("alpha", "bn") else jax.tree.map(lambda a: 0.5 * rand(a.shape, 23), v)
              for k, v in variables["params"].items()}
    params["bn"] = {"scale": jnp.ones(c), "bias": jnp.zeros(c)}
    params["alpha"] = jnp.array([0.5, -1.0, 2.0, 0.25])
    stats = jax.tree.map(lambda a: jnp.zeros(a.shape), variables["batch_stats"])
    stats["bn"]["var"] = jnp.ones(c)
    got = apply(layer, {"params": params, "batch_stats": stats}, x, train=False)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    xs, a = np.asarray(x, np.float64), IN_MOTION_29.adjacency().astype(np.float64)
    swish = lambda v: v / (1 + np.exp(-v))  # noqa: E731
    y = 0
    for s in range(k):  # one AutoCP MultiscaleSpatialGraphConv per adjacency slice
        cols, vcols = slice(s * rel, (s + 1) * rel), slice(s * c, (s + 1) * c)
        x1 = (xs @ p["relation_a_kernel"][:, cols] + p["relation_a_bias"][cols]).mean(axis=1)
        x2 = (xs @ p["relation_b_kernel"][:, cols] + p["relation_b_bias"][cols]).mean(axis=1)
        x3 = xs @ p["value"]["kernel"][:, vcols] + p["value"]["bias"][vcols]
        r = swish(x1[:, :, None, :] - x2[:, None, :, :])  # (N, U, V, rel)
        adj = (r @ p["relation_kernel"][s] + p["relation_bias"][s]) * p["alpha"][s] + a[s][None, :, :, None]
        y = y + np.einsum("nuvc,ntvc->ntuc", adj, x3)
    bn = y / np.sqrt(1 + 1e-5)  # fresh running statistics: mean 0, var 1, scale 1, bias 0
    np.testing.assert_allclose(got, swish(y) + bn + xs, rtol=1e-4, atol=1e-4)


def test_batchnorm_matches_pytorch_semantics():
    x = 3 + 2 * rand((4, 5, 3, 2), 8)
    bn = BatchNorm()
    variables = bn.init(KEY, x, train=True)
    assert shapes(variables) == {"params": {"scale": (2,), "bias": (2,)},
                                 "batch_stats": {"mean": (2,), "var": (2,)}}
    np.testing.assert_array_equal(variables["batch_stats"]["var"], 1.0)  # not updated by init
    y, state = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    xs = np.asarray(x, np.float64).reshape(-1, 2)
    want = (xs - xs.mean(0)) / np.sqrt(xs.var(0) + 1e-5)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 2), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state["batch_stats"]["mean"], 0.1 * xs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(state["batch_stats"]["var"], 0.9 + 0.1 * xs.var(0, ddof=1), rtol=1e-5)
    y_eval = bn.apply({**variables, **state}, x, train=False)
    mean, var = np.asarray(state["batch_stats"]["mean"]), np.asarray(state["batch_stats"]["var"])
    np.testing.assert_allclose(np.asarray(y_eval).reshape(-1, 2), (xs - mean) / np.sqrt(var + 1e-5),
                               rtol=1e-4, atol=1e-4)


def test_batchnorm_gradients_equal_autodiff_of_the_plain_formula():
    x, scale, bias = 1 + rand((3, 4, 5, 6), 18), 1 + 0.1 * rand((6,), 19), rand((6,), 20)
    weights = rand((3, 4, 5, 6), 21)

    def plain(x, scale, bias):
        mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
        return jnp.sum(weights * ((x - mean) / jnp.sqrt(var + 1e-5) * scale + bias) ** 2)

    def custom(x, scale, bias):
        return jnp.sum(weights * batch_norm_train(x, scale, bias, 1e-5)[0] ** 2)

    chex.assert_trees_all_close(jax.grad(custom, (0, 1, 2))(x, scale, bias),
                                jax.grad(plain, (0, 1, 2))(x, scale, bias), rtol=1e-4, atol=1e-4)


def test_dense_gradients_equal_autodiff_of_the_matrix_product():
    x, kernel, weights = rand((3, 4, 5, 6), 22), rand((6, 7), 23), rand((3, 4, 5, 7), 24)

    def loss(matmul):
        return lambda x, k: jnp.sum(weights * jnp.tanh(matmul(x, k)))

    want = jax.grad(loss(jnp.matmul), (0, 1))(x, kernel)
    chex.assert_trees_all_close(jax.grad(loss(dense), (0, 1))(x, kernel), want, rtol=1e-5, atol=1e-6)
    # vmapped over a leading axis (input streams, students): per-slice gradients
    xs, ks = jnp.stack([x, 2 * x]), jnp.stack([kernel, -kernel])
    got = jax.vmap(jax.grad(loss(dense), (0, 1)))(xs, ks)
    chex.assert_trees_all_close(got, jax.vmap(jax.grad(loss(jnp.matmul), (0, 1)))(xs, ks), rtol=1e-5, atol=1e-6)


def test_initialisation_follows_autocp():
    x = jnp.zeros((1, 4, 3, 256))
    params = Pointwise(512).init(KEY, x)["params"]
    assert np.std(params["kernel"]) == pytest.approx(np.sqrt(2 / 512), rel=0.02)  # fan_out = C_out
    np.testing.assert_array_equal(params["bias"], 0)
    params = TemporalConv(256, 7).init(KEY, x)["params"]
    assert np.std(params["kernel"]) == pytest.approx(np.sqrt(2 / (7 * 256)), rel=0.02)
    params = DepthwiseConv(7).init(KEY, x)["params"]
    assert np.std(params["kernel"]) == pytest.approx(np.sqrt(2 / (7 * 256)), rel=0.1)  # C x k
    params = Pointwise(512, init_std=0.001).init(KEY, x)["params"]
    assert np.std(params["kernel"]) == pytest.approx(0.001, rel=0.02)
    params = SpatialGraphConv(8, 2, COCO_17).init(KEY, jnp.zeros((1, 2, 17, 4)))["params"]
    np.testing.assert_array_equal(params["edge_importance"], 1)


# --------------------------------------------------------------------------------------------------------
# Layers

def test_activation_is_applied_before_the_residual_add():
    """AutoCP's order act(BN(f(x))) + x: with relu the output minus the input is never negative."""
    x = rand((2, 6, 29, 8), 9)
    for layer in (BasicTemporal(3), SpatialGraphLayer(8, 1, IN_MOTION_29, "relu"),
                  AttentionLayer("ca", "relu", 1.0, IN_MOTION_29)):
        y = init(layer, x, train=False)[0]
        assert float(jnp.min(y - x)) >= 0.0
        assert float(jnp.min(y)) < 0.0  # act(BN(f(x)) + x) would be non-negative


def test_frame_attention_is_an_unbounded_gate_without_sigmoid():
    x = rand((2, 12, 29, 8), 10)
    fa = FrameAttention()
    att, variables = init(fa, x, train=False)
    params = variables["params"]
    assert att.shape == (2, 12, 1, 1)
    stats = jnp.stack([x.mean(axis=(2, 3)), x.max(axis=(2, 3))], -1)[:, :, None, :]  # (N, T, 1, 2)
    want = lax_conv(stats, params["conv"]["kernel"][:, None], 1, 4) + params["conv"]["bias"]
    np.testing.assert_allclose(att, want, rtol=1e-5, atol=1e-5)
    assert float(att.min()) < 0.0  # a sigmoid gate could not be negative


def test_part_and_joint_attention_are_softmaxes():
    x = rand((2, 6, 29, 8), 11)
    pa = PartAttention(1.5, IN_MOTION_29)
    att = init(pa, x, train=False)[0]  # (N, 1, V, C)
    assert att.shape == (2, 1, 29, 8)
    part_of = IN_MOTION_29.joint_to_part()
    firsts = [int(np.flatnonzero(part_of == p)[0]) for p in range(5)]
    np.testing.assert_allclose(att[:, 0, firsts].sum(axis=1), 1.0, rtol=1e-5)  # softmax over parts
    for p in range(5):
        members = np.flatnonzero(part_of == p)
        np.testing.assert_array_equal(att[:, :, members], att[:, :, members[:1]].repeat(len(members), 2))
    ja = JointAttention()
    att = init(ja, x, train=False)[0]
    assert att.shape == (2, 1, 29, 1)
    np.testing.assert_allclose(att.sum(axis=2), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", ["stja", "ca"])
def test_sigmoid_attentions_are_gates(kind):
    x = rand((2, 6, 29, 8), 12)
    att = STJointAttention(2.0) if kind == "stja" else ChannelAttention()
    a = init(att, x, train=False)[0]
    assert a.shape == ((2, 6, 29, 8) if kind == "stja" else (2, 1, 1, 8))
    assert 0.0 < float(a.min()) and float(a.max()) < 1.0


def test_v3_autocp_outputs_residual_plus_a_constant_and_corrected_gates():
    x = rand((3, 8, 29, 16), 13)
    autocp = V3Temporal(3, activation="swish", expand_ratio=1.5)
    corrected = V3Temporal(3, activation="swish", expand_ratio=1.5, variant="corrected")
    assert shapes(jax.eval_shape(lambda: autocp.init(KEY, x, train=False))) == \
        shapes(jax.eval_shape(lambda: corrected.init(KEY, x, train=False)))

    @jax.jit
    def run(x):
        variables = autocp.init(KEY, x, train=False)

        def out(layer, params):
            return layer.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])[0]

        grads = jax.grad(lambda p: jnp.sum(out(corrected, p) ** 2))(variables["params"])
        return out(autocp, variables["params"]) - x, out(corrected, variables["params"]) - x, grads

    diff_autocp, diff_corrected, grads = run(x)  # stride 1: the residual is x
    np.testing.assert_allclose(diff_autocp, jnp.broadcast_to(diff_autocp[:, :1, :1], x.shape), atol=1e-6)
    assert float(jnp.abs(diff_corrected - diff_corrected[:, :1, :1]).max()) > 1e-2
    chex.assert_tree_all_finite(grads)


def test_shuffle_autocp_is_identity_and_corrected_shuffles():
    x = rand((2, 6, 29, 32), 14)
    np.testing.assert_array_equal(channel_shuffle(x, 32), x)  # AutoCP: groups = channels -> no-op
    shuffled = np.asarray(channel_shuffle(x, 4))
    perm = np.arange(32).reshape(4, 8).T.reshape(-1)  # ShuffleNet: (groups, per group) -> transpose
    np.testing.assert_array_equal(shuffled, np.asarray(x)[..., perm])
    autocp = ShuffleTemporal(5, stride=2, reduct_ratio=1.5)
    corrected = ShuffleTemporal(5, stride=2, reduct_ratio=1.5, variant="corrected")
    va = jax.eval_shape(lambda: autocp.init(KEY, x, train=False))
    vc = jax.eval_shape(lambda: corrected.init(KEY, x, train=False))
    assert va["params"]["reduce"]["kernel"].shape == (32, 21)  # int(32 // 1.5)
    assert vc["params"]["reduce"]["kernel"].shape == (4, 8, 5)  # 4 groups, inner 21 -> 20
    assert vc["params"]["expand"]["kernel"].shape == (4, 5, 8)

    @jax.jit
    def run(x):
        v = autocp.init(KEY, x, train=False)
        grads = jax.grad(lambda p: jnp.sum(autocp.apply({**v, "params": p}, x, train=False) ** 2))(v["params"])
        return grads, corrected.init_with_output(KEY, x, train=False)[0]

    grads, y = run(x)
    assert y.shape == (2, 3, 29, 32)
    chex.assert_tree_all_finite((grads, y))


def test_main_block_variants():
    """autocp: one Basic layer per main block whatever depth_main (stride only if depth 1); corrected:
    depth_main layers of the searched type, stride on the first."""
    def plan(**kw):
        return main_blocks(small_arch(conv="sep", blocks_main=2, **kw), 64)

    assert plan(depth_main=2) == plan(depth_main=3) == plan(depth_main=4)
    assert [[(t.conv, t.stride) for t in b.temporal] for b in plan(depth_main=3, stride_main=2)] == \
        [[("basic", 1)], [("basic", 1)]]
    assert [[(t.conv, t.stride) for t in b.temporal] for b in plan(depth_main=1, stride_main=2)] == \
        [[("basic", 2)], [("basic", 2)]]
    corrected = plan(depth_main=3, stride_main=2, variant="corrected")
    assert [[(t.conv, t.stride) for t in b.temporal] for b in corrected] == [[("sep", 2), ("sep", 1), ("sep", 1)]] * 2
    x = jax.ShapeDtypeStruct((1, 1, 12, 29, 4), jnp.float32)

    def tree(**kw):
        model = create_model(small_arch(conv="sep", **kw), IN_MOTION_29, FeatureConfig(streams="J"))
        return shapes(jax.eval_shape(lambda x: model.init(KEY, x, train=False), x)["params"])

    assert tree(depth_main=2) == tree(depth_main=3)
    assert tree(depth_main=2, variant="corrected") != tree(depth_main=3, variant="corrected")
    main = tree(depth_main=3, variant="corrected")["main0"]
    assert sorted(k for k in main if k.startswith("tcn")) == ["tcn0", "tcn1", "tcn2"]
    assert "depthwise" in main["tcn2"]


def test_variants_agree_where_autocp_has_no_quirk():
    """conv basic with depth_main 1: the same network in both variants, same parameters, same outputs."""
    arch = small_arch(depth_main=1, stride_main=2, attention="fa")
    x = rand((2, 1, 10, 29, 4), 15)
    a, c = (create_model(dataclasses.replace(arch, variant=v), IN_MOTION_29, FeatureConfig(streams="J"))
            for v in ("autocp", "corrected"))
    assert shapes(jax.eval_shape(lambda: a.init(KEY, x, train=False))) == \
        shapes(jax.eval_shape(lambda: c.init(KEY, x, train=False)))
    out_a, out_c = jax.jit(lambda x: (a.init_with_output(KEY, x, train=False)[0],
                                      c.init_with_output(KEY, x, train=False)[0]))(x)
    np.testing.assert_array_equal(out_a, out_c)


# --------------------------------------------------------------------------------------------------------
# Whole networks: every choice of every decision

# Choice index per decision for 6 candidates; other decisions take choice (candidate mod #choices).
# Structural choices are spread so that no candidate is large (compiling dominates the test time).
COVER = {
    "multi_gcn": [1, 0, 1, 1, 1, 1],
    "blocks_in": [0, 0, 2, 1, 0, 0],
    "depth_in": [2, 0, 0, 1, 0, 0],
    "blocks_main": [2, 0, 0, 0, 3, 1],
    "depth_main": [0, 1, 2, 0, 3, 0],
}
COVER_VARIANTS = ["autocp", "corrected", "autocp", "corrected", "autocp", "corrected"]


def cover_candidate(i: int) -> Arch:
    space = load_space()
    ids = [COVER[d.name][i] if d.name in COVER else i % d.num_choices for d in space.arch]
    return space.decode(ids + [0] * len(space.hparams), variant=COVER_VARIANTS[i])[0]


def test_cover_table_holds_every_choice_of_every_decision():
    space = load_space()
    archs = [cover_candidate(i) for i in range(6)]
    for d in space.arch:
        used = {d.index(getattr(a, d.name)) for a in archs}
        assert used == set(range(d.num_choices)), d.name


TRACES: dict = {}


@functools.partial(jax.jit, static_argnums=0,
                   compiler_options={"xla_backend_optimization_level": 0})  # compiles faster
def forward_backward(model, variables, x, dropout_key):
    """One training-mode forward and backward pass: (logits, new batch stats, gradients)."""
    TRACES[model] = TRACES.get(model, 0) + 1  # runs once per trace

    def loss(params):
        logits, state = model.apply({**variables, "params": params}, x, train=True,
                                    mutable=["batch_stats"], rngs={"dropout": dropout_key})
        return jnp.sum(jax.nn.log_softmax(logits)[:, 0]), (logits, state)

    (_, (logits, state)), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    return logits, state, grads


def random_variables(model, x):
    """Variables with the model's structure (traced, not compiled): params ~ N(0, 0.3^2), fresh BN stats."""
    tree = jax.eval_shape(lambda x: model.init(KEY, x, train=False), x)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: jnp.asarray(0.3 * rng.standard_normal(a.shape), jnp.float32), tree["params"])
    stats = jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.zeros(a.shape) if path[-1].key == "mean" else jnp.ones(a.shape), tree["batch_stats"])
    return {"params": params, "batch_stats": stats}


@pytest.mark.parametrize("i", range(6), ids=lambda i: "-".join(
    str(v) for v in dataclasses.astuple(cover_candidate(i))[1:4]))
def test_every_choice_builds_and_trains_with_one_trace(i):
    arch = cover_candidate(i)
    model = create_model(arch, IN_MOTION_29, FeatureConfig(streams="J"))
    x = rand((2, 1, 12, 29, 4), i)
    variables = random_variables(model, x)
    logits, state, grads = forward_backward(model, variables, x, jax.random.key(2))
    chex.assert_shape(logits, (2, 2))
    chex.assert_tree_all_finite((logits, state, grads))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
    assert not np.allclose(state["batch_stats"]["input"]["stream"]["init_bn"]["var"], 1.0)  # stats updated
    # The same architecture built again, new values, another dropout key: no new trace.
    again = create_model(dataclasses.replace(arch), IN_MOTION_29, FeatureConfig(streams="J"))
    other_logits = forward_backward(again, variables, rand(x.shape, 100 + i), jax.random.key(3))[0]
    assert TRACES[model] == 1
    assert not np.allclose(logits, other_logits)
    if arch.dropout > 0:  # dropout is live in training: only the key differs
        assert not np.allclose(logits, forward_backward(again, variables, x, jax.random.key(3))[0])


def test_candidates_of_every_choice_build_at_150_frames():
    """A covering set (row k takes choice (k + d) mod n_d of decision d, so every choice of every decision
    appears, in varied company) and four random candidates; each traced once (eval_shape, no compile)."""
    space = load_space()
    x = jax.ShapeDtypeStruct((1, 4, 150, 29, 4), jnp.float32)
    sizes = np.asarray(space.num_choices)
    covering = (np.arange(sizes.max())[:, None] + np.arange(len(sizes))[None]) % sizes
    rows = np.concatenate([covering, np.asarray(space.sample_many(jax.random.key(4), 4))])
    assert all(set(rows[:, d]) == set(range(n)) for d, n in enumerate(sizes))
    for row in rows:
        arch, _ = space.decode(row, variant="corrected" if row[0] % 2 else "autocp")
        model = create_model(arch, IN_MOTION_29)
        logits, variables = jax.eval_shape(lambda x, m=model: m.init_with_output(KEY, x, train=False, mutable=True), x)
        assert logits.shape == (1, 2), arch
        main = main_blocks(arch, 4 * input_stream_channels(arch))
        frames = block_frames(block_frames(150, input_blocks(arch))[-1], main)[-1]
        assert variables["intermediates"]["features"][0].shape == (1, frames, 29, 48), arch


def test_parameter_count_of_a_small_network_equals_a_hand_count():
    arch = small_arch(init_channels=16, attention="ca")
    x = jax.ShapeDtypeStruct((1, 1, 12, 29, 4), jnp.float32)
    model = create_model(arch, IN_MOTION_29, FeatureConfig(streams="J"))
    params = jax.eval_shape(lambda x: model.init(KEY, x, train=False), x)["params"]
    edge = 2 * 29 * 29  # edge importance of a K = 2 graph layer
    bn = lambda c: 2 * c  # noqa: E731
    stem = bn(4) + (4 * 32 + 32) + edge + bn(16) + (4 * 16 + 16) + bn(16) + (3 * 16 * 16 + 16) + bn(16)
    block = ((16 * 64 + 64) + edge + bn(32) + (16 * 32 + 32) + bn(32)  # graph layer 16 -> 32 + residual
             + (3 * 32 * 32 + 32) + bn(32)  # basic temporal layer
             + (32 * 8 + 8) + bn(8) + (8 * 32 + 32) + bn(32))  # channel attention + wrapper BN
    main = ((32 * 96 + 96) + edge + bn(48) + (32 * 48 + 48) + bn(48) + (3 * 48 * 48 + 48) + bn(48)
            + (48 * 12 + 12) + bn(12) + (12 * 48 + 48) + bn(48))
    classifier = 48 * 2 + 2
    assert sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)) == stem + block + main + classifier


def test_paper_best_architecture_structure():
    arch, _ = load_arch_file(BEST_FILE)
    blocks = input_blocks(arch)
    assert [(b.in_channels, b.out_channels) for b in blocks] == [(64, 64), (64, 64)]
    assert [[(t.conv, t.window, t.stride) for t in b.temporal] for b in blocks] == \
        [[("sep", 3, 3), ("sep", 3, 1)]] * 2
    assert block_frames(150, blocks) == (50, 17)
    main = main_blocks(arch, 4 * input_stream_channels(arch))
    assert [(b.in_channels, b.out_channels) for b in main] == [(256, 128), (128, 48)]
    assert [[(t.conv, t.window, t.stride) for t in b.temporal] for b in main] == [[("basic", 7, 1)]] * 2
    model = create_model(arch, IN_MOTION_29)
    x = jax.ShapeDtypeStruct((1, 4, 150, 29, 4), jnp.float32)
    logits, variables = jax.eval_shape(lambda x: model.init_with_output(KEY, x, train=False, mutable=True), x)
    assert variables["intermediates"]["features"][0].shape == (1, 17, 29, 48)
    p = shapes(variables["params"])
    assert sorted(p) == ["classifier", "input", "main0", "main1"]
    stream = p["input"]["stream"]  # the 4 streams' weights stacked on a leading axis
    assert stream["block0"]["tcn0"]["expand"]["kernel"] == (4, 64, 96)  # int(64 * 1.5)
    assert stream["block0"]["tcn0"]["depthwise"]["kernel"] == (4, 3, 96)
    assert p["main0"]["tcn0"]["conv"]["kernel"] == (7, 128, 128)
    assert p["main0"]["gcn"]["gcn"]["kernel"] == (256, 2 * 128)
    assert p["classifier"]["fc"]["kernel"] == (48, 2)


def test_stacked_streams_equal_separate_input_streams():
    """The stream-vmapped module computes, per stream, what InputStream computes with that stream's slice
    of the stacked weights; outputs are concatenated on channels in stream order; BN stats per stream.

    In float64 the two agree to 1e-9 (measured 1e-12): any mixed-up stream or weight slice gives O(1)
    errors. In float32 they differ by up to 3e-4 (outputs up to 5.7): that is float32 rounding, not a
    difference in what is computed, since each float32 result is itself 2e-4 to 5e-4 away from the float64
    one (train-mode BatchNorm on a 2 x 12 x 29 batch of random weights amplifies the rounding of the sums it
    normalises, summed in another order by the vmapped and the single-stream programs), and how large depends
    on XLA's code generation (6.1e-4 with LLVM's optimisations off). So float32 is held to atol 1e-3: two
    results each within 5e-4 of the exact one, rtol 0.
    """
    arch = small_arch()
    streams = InputStreams(arch, IN_MOTION_29, 3)
    one = InputStream(arch, IN_MOTION_29)

    def run(variables, x):
        got, state = streams.apply(variables, x, train=True, mutable=["batch_stats"])
        parts = [one.apply(jax.tree.map(lambda a, i=i: a[i], {k: v["stream"] for k, v in variables.items()}),
                           x[:, i], train=True, mutable=["batch_stats"]) for i in range(3)]
        return got, state, parts

    x = rand((2, 3, 12, 29, 4), 7)
    variables = random_variables(streams, x)
    for dtype, atol, var_rtol in ((jnp.float64, 1e-9, 1e-12), (jnp.float32, 1e-3, 1e-6)):
        with jax.enable_x64(dtype == jnp.float64):
            cast = lambda a, dtype=dtype: jnp.asarray(a, dtype)  # noqa: E731
            got, state, parts = jax.jit(run)(jax.tree.map(cast, variables), cast(x))
            assert got.dtype == dtype
            np.testing.assert_allclose(got, jnp.concatenate([y for y, _ in parts], -1), rtol=0, atol=atol)
            for i, (_, part_state) in enumerate(parts):
                np.testing.assert_allclose(state["batch_stats"]["stream"]["init_bn"]["var"][i],
                                           part_state["batch_stats"]["init_bn"]["var"], rtol=var_rtol)


def test_network_checks_its_input_shape():
    model = create_model(small_arch(), IN_MOTION_29, FeatureConfig(streams="J"))
    for shape in ((4, 2, 8, 29, 4), (4, 1, 8, 17, 4), (4, 1, 8, 29, 3), (4, 8, 29, 4)):
        with pytest.raises(ValueError, match="expected input"):
            jax.eval_shape(lambda x: model.init(KEY, x, train=False), jax.ShapeDtypeStruct(shape, jnp.float32))


def test_every_temporal_layer_keeps_width_and_strides_time():
    x = jax.ShapeDtypeStruct((2, 13, 29, 32), jnp.float32)
    for name, cls in TEMPORAL_LAYERS.items():
        for variant in ("autocp", "corrected"):
            layer = cls(5, stride=3, activation="hardswish", expand_ratio=2.0, reduct_ratio=2.0, variant=variant)
            y, _ = jax.eval_shape(lambda x, layer=layer: layer.init_with_output(KEY, x, train=False), x)
            assert y.shape == (2, 5, 29, 32), (name, variant)
    block = Block(input_blocks(small_arch(multi_gcn=True))[0], small_arch(multi_gcn=True), IN_MOTION_29)
    y, v = jax.eval_shape(lambda x: block.init_with_output(KEY, x, train=False),
                          jax.ShapeDtypeStruct((2, 13, 29, 16), jnp.float32))
    assert y.shape == (2, 13, 29, 32) and "alpha" in v["params"]["gcn"]


CHAIN_LAYERS = 3


def _temporal_conv_chains(module_cls, window, stride, channels):
    """(through the module, through autodiff of the plain shifted-frames formula): x, kernel -> the conv
    applied CHAIN_LAYERS times with tanh after each (so that the first layers' residuals wait for the last's
    backward pass)."""
    from jaxcp.model.ops import shifted_frames

    module = (TemporalConv(channels, window, stride, use_bias=False) if module_cls is TemporalConv
              else DepthwiseConv(window, stride, use_bias=False))

    def plain_conv(x, kernel):
        shifts = shifted_frames(x, window, stride)
        if module_cls is TemporalConv:  # im2col, as the module computes it
            return jnp.matmul(jnp.concatenate(shifts, -1), kernel.reshape(-1, channels), precision="highest")
        return sum(s * kernel[j] for j, s in enumerate(shifts))

    def chain(conv):
        def run(x, kernel):
            for _ in range(CHAIN_LAYERS):
                x = jnp.tanh(conv(x, kernel))
            return x
        return run

    return chain(lambda x, k: module.apply({"params": {"kernel": k}}, x)), chain(plain_conv)


@pytest.mark.parametrize("module_cls", [TemporalConv, DepthwiseConv])
@pytest.mark.parametrize("stride", [1, 2])
def test_temporal_convs_keep_only_their_input_for_the_backward_pass_and_agree_with_autodiff(module_cls, stride):
    """The matmul formulation recomputes the time shifts in the backward pass (`inputs_as_residuals`): the
    gradients equal autodiff of the plain formula, and the compiled gradient of a chain of such layers needs
    less temporary memory than autodiff of the same formula, which keeps each layer's `window` shifts (or
    its im2col matrix) until the backward pass reaches it."""
    window, channels = 7, 16
    kernel = rand((window, channels, channels) if module_cls is TemporalConv else (window, channels), 33)
    through_module, plain = _temporal_conv_chains(module_cls, window, stride, channels)

    def grads_and_temp_bytes(fn, x):
        frames = x.shape[1]
        for _ in range(CHAIN_LAYERS):
            frames = output_frames(frames, window, stride)
        weights = rand((x.shape[0], frames, *x.shape[2:]), 35)

        def loss(x, k):
            return jnp.sum(weights * fn(x, k))

        compiled = jax.jit(jax.grad(loss, (0, 1))).lower(x, kernel).compile()
        return compiled(x, kernel), compiled.memory_analysis().temp_size_in_bytes

    small = rand((2, 24, 5, channels), 32)
    chex.assert_trees_all_close(grads_and_temp_bytes(through_module, small)[0],
                                grads_and_temp_bytes(plain, small)[0], rtol=1e-4, atol=1e-4)
    big = rand((4, 150, 29, channels), 34)
    kept, autodiff = grads_and_temp_bytes(through_module, big)[1], grads_and_temp_bytes(plain, big)[1]
    one_layers_shifts = window * big.size // stride * 4  # bytes of the first layer's `window` shifts
    assert autodiff - kept > one_layers_shifts / 4, (kept, autodiff, one_layers_shifts)
