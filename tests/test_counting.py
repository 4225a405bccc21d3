"""Parameter and MAC counting: thop rules on single layers against hand counts, AutoCP's logged numbers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcp.complexity import main
from jaxcp.data.skeleton import COCO_17, IN_MOTION_29
from jaxcp.model import count_ops
from jaxcp.model.attention import AttentionLayer
from jaxcp.model.counting import complexity, count_params, trace_counts
from jaxcp.model.graph import MultiGCNLayer, SpatialGraphConv
from jaxcp.model.network import Classifier
from jaxcp.model.temporal import BasicTemporal, SepTemporal, V3Temporal
from jaxcp.nas.space import DEFAULT_SPACE, load_arch_file, load_space

BEST_FILE = DEFAULT_SPACE.parents[1] / "arch" / "autocp_best.yaml"
T, V = 6, 29
BN = lambda c: (4 * T * V * c, 2 * c)  # noqa: E731  thop BatchNorm on (1, c, T, V): MACs, params


def counted(module, shape, **kwargs):
    """(MACs, params) that the op records of one batch-1 trace of `module` add up to."""
    with count_ops() as records:
        jax.eval_shape(lambda x: module.init(jax.random.key(0), x, **kwargs),
                       jax.ShapeDtypeStruct(shape, jnp.float32))
    return sum(r.macs for r in records), sum(r.params for r in records)


def add(*pairs):
    return tuple(map(sum, zip(*pairs, strict=True)))


# (name, module, input shape, call kwargs, hand count (MACs, params)) at T = 6 frames, V = 29 joints
HAND_COUNTS = [
    ("graph conv 4->8, K=2", SpatialGraphConv(8, 2, IN_MOTION_29), (1, T, V, 4), {},
     (T * V * 16 * 4, 4 * 16 + 16)),  # a 1x1 conv to K x 8 channels; einsum and edge importance: 0
    ("basic k3 stride 2", BasicTemporal(3, stride=2), (1, 12, V, 8), {"train": False},
     add((T * V * 8 * 8 * 3, 3 * 8 * 8 + 8), BN(8),  # conv (k x 1), bias not counted in MACs
         (T * V * 8 * 8, 8 * 8 + 8), BN(8))),  # strided 1x1 residual conv + BN
    ("sep e1.5 k5", SepTemporal(5, expand_ratio=1.5), (1, T, V, 8), {"train": False},
     add((T * V * 12 * 8, 8 * 12 + 12), BN(12), (T * V * 12 * 5, 12 * 5 + 12), BN(12),
         (T * V * 8 * 12, 12 * 8 + 8), BN(8))),
    ("v3 e2 (squeeze-excite on a pooled vector)", V3Temporal(3, expand_ratio=2.0), (1, T, V, 8),
     {"train": False},
     add((T * V * 16 * 8, 8 * 16 + 16), BN(16), (T * V * 16 * 3, 16 * 3 + 16), BN(16),
         ((T * V + 1) * 16, 0),  # AdaptiveAvgPool2d(1)
         (4 * 16, 16 * 4), (4 * 4, 8), (16 * 4, 4 * 16), (4 * 16, 32),  # SE convs (no bias) + BNs on 1x1
         (8 * 16, 16 * 8 + 8), (4 * 8, 16))),  # projection and its BN on (1, 8, 1, 1)
    ("frame attention", AttentionLayer("fa", "relu", 1.0, IN_MOTION_29), (1, T, V, 8), {"train": False},
     add(((8 * V + 1) * T, 0), (T * 2 * 9, 2 * 9 + 1), BN(8))),  # avg pool per frame, conv 2->1 k9
    ("channel attention", AttentionLayer("ca", "relu", 1.0, IN_MOTION_29), (1, T, V, 8), {"train": False},
     add(((T * V + 1) * 8, 0), (2 * 8, 8 * 2 + 2), (4 * 2, 4), (8 * 2, 2 * 8 + 8), BN(8))),
    ("joint attention", AttentionLayer("ja", "relu", 1.0, IN_MOTION_29), (1, T, V, 8), {"train": False},
     add(((T * 8 + 1) * V, 0), (14 * V, V * 14 + 14), (4 * 14, 28), (V * 14, 14 * V + V),
         (3 * V - 1, 0), BN(8))),  # softmax over 29 joints: exp + add + div
    ("part attention r2", AttentionLayer("pa", "relu", 2.0, IN_MOTION_29), (1, T, V, 8), {"train": False},
     add(((T * V + 1) * 8, 0), (4 * 8, 8 * 4 + 4), (4 * 4, 8), (40 * 4, 4 * 40 + 40),
         (8 * (3 * 5 - 1), 0), BN(8))),  # 8 softmaxes over 5 parts
    ("st-joint attention r2", AttentionLayer("stja", "relu", 2.0, IN_MOTION_29), (1, T, V, 8),
     {"train": False},
     add(((T + V) * 4 * 8, 8 * 4 + 4), (4 * 4 * (T + V), 8), (T * 8 * 4, 4 * 8 + 8), (V * 8 * 4, 4 * 8 + 8),
         BN(8))),
    ("multi-gcn 8->8", MultiGCNLayer(8, IN_MOTION_29, "relu"), (1, T, V, 8), {"train": False},
     add(*[(T * V * 4 * 8, 8 * 4 + 4)] * 4, *[(T * V * 4 * 8, 8 * 4 + 4)] * 4,  # relation convs, per slice
         *[(T * V * 8 * 8, 8 * 8 + 8)] * 4,  # value convs
         *[(V * V * 8 * 4, 4 * 8 + 8)] * 4,  # relation -> adjacency refinement convs on (1, 4, V, V)
         BN(8))),  # alpha is not counted
    ("classifier", Classifier(2, 0.0), (1, T, V, 48), {"train": False},
     ((T * V + 1) * 48 + 48 * 2, 48 * 2 + 2)),
]


@pytest.mark.parametrize("name, module, shape, kwargs, expected", HAND_COUNTS, ids=[c[0] for c in HAND_COUNTS])
def test_thop_counts_of_layers_equal_hand_counts(name, module, shape, kwargs, expected):
    assert counted(module, shape, **kwargs) == expected


def test_counts_scale_with_the_batch_only_through_activations():
    layer = SepTemporal(3, expand_ratio=1.0)
    one, params = counted(layer, (1, T, V, 8), train=False)
    three, same_params = counted(layer, (3, T, V, 8), train=False)
    assert three == 3 * one and same_params == params


def test_paper_best_architecture_matches_autocp_log():
    """AutoCP's test log for argmax_1003: 'Model has: 908780506.0 MACs and 621.184K params' (thop)."""
    arch, _ = load_arch_file(BEST_FILE)
    counts = complexity(arch, IN_MOTION_29, frames=150, streams=4, xla=False)
    assert counts["macs_thop"] == 908_780_506
    assert counts["params_thop"] == 621_184
    graph_layers = 4 * (1 + arch.blocks_in) + arch.blocks_main  # all with K = 2 slices
    assert counts["params"] - counts["params_thop"] == graph_layers * 2 * 29 * 29  # edge importance
    assert counts["flops_xla"] == 0.0


def test_trainable_minus_thop_parameters_are_edge_importance_and_alpha():
    space = load_space()
    for row in np.asarray(space.sample_many(jax.random.key(5), 4)):
        arch, _ = space.decode(row)
        arch = dataclasses.replace(arch, multi_gcn=bool(row[1] % 2))
        variables, records = trace_counts(arch, COCO_17, frames=30, streams=2)
        params = count_params(variables["params"])
        uncounted = params - count_params(variables["params"], exclude=("edge_importance", "alpha"))
        assert uncounted > 0
        assert params - sum(r.params for r in records) == uncounted, arch


def test_xla_flops_of_a_small_network():
    """Lower bound, derived: XLA counts a multiply-add as 2 FLOPs, and every convolution MAC thop counts is
    computed, so flops_xla >= 2 x the convolution MACs (6.04 M of thop's 6.63 M here, the rest BatchNorm
    and pooling). Upper bound: on top of that XLA counts the graph einsums (which thop leaves out),
    BatchNorm, activations and attention products; measured 14.35 M = 1.19 x the lower bound (2.17 x
    macs_thop). Held to 1.5 x the lower bound: a formulation that computes a convolution twice or as a
    dense product of mostly zeros (e.g. a depthwise convolution as a full one) breaks it."""
    arch, _ = load_arch_file(BEST_FILE)
    small = dataclasses.replace(arch, init_channels=16, blocks_in=1, depth_in=1, blocks_main=1)
    counts = complexity(small, COCO_17, frames=30, streams=1)
    _, records = trace_counts(small, COCO_17, frames=30, streams=1)
    conv_macs = sum(r.macs for r in records if r.kind == "conv")
    assert 0.85 * counts["macs_thop"] < conv_macs < counts["macs_thop"]
    assert 2 * conv_macs <= counts["flops_xla"] < 1.5 * 2 * conv_macs
    assert counts["params"] > counts["params_thop"] > 0


def test_command_line_json_and_text(capsys):
    assert main(["--arch", str(BEST_FILE), "--json", "--no-xla"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"params": 644_732, "params_thop": 621_184, "macs_thop": 908_780_506, "flops_xla": 0.0}
    assert main(["--arch", str(BEST_FILE), "--no-xla", "--breakdown", "--frames", "60"]) == 0
    text = capsys.readouterr().out
    assert "621,184" in text and "60 frames" in text and "input3" in text and "classifier" in text


def test_command_line_errors_exit_with_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--arch", str(tmp_path / "missing.yaml")])
    assert info.value.code == 2
    assert "missing.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--arch", str(BEST_FILE), "--layout", "no-such-layout"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["--arch", str(BEST_FILE), "--frames", "0", "--no-xla"])
    assert info.value.code == 2


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "jaxcp.complexity", "--arch", str(BEST_FILE), "--json",
                             "--no-xla", "--frames", "30"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["params_thop"] == 621_184 and 0 < counts["macs_thop"] < 908_780_506
