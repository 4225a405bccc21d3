"""Parameter and MAC counts of a candidate network, as AutoCP reports them, and XLA's FLOP estimate.

`complexity(arch, layout)` builds the network, traces one batch-1 forward pass with `jax.eval_shape`
(nothing is allocated) and returns

- `params`: trainable parameters, edge importance (and Multi-GCN's alpha) included;
- `params_thop`, `macs_thop`: the counts of thop 0.1.1 as AutoCP used it (reference §8): parameters of
  convolutions, BatchNorm and linear layers only; MACs of convolutions, BatchNorm, adaptive average
  pooling and softmax; graph einsums, activations, attention products and residual adds count 0;
- `flops_xla`: XLA's cost analysis of the compiled batch-1 forward pass (0 with `xla=False`).

The command line is `python -m jaxcp.complexity` (jaxcp/complexity.py).
"""

from __future__ import annotations

from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

from jaxcp.core.errors import InputError
from jaxcp.data.features import STREAM_ORDER, FeatureConfig
from jaxcp.data.skeleton import Layout, load_layout
from jaxcp.data.windows import WINDOW
from jaxcp.model.arch import Arch
from jaxcp.model.network import create_model, input_shape
from jaxcp.model.ops import OpCount, count_ops

UNCOUNTED_PARAMS = ("edge_importance", "alpha")  # owned by custom torch modules: thop skips them


def stream_features(streams: int) -> FeatureConfig:
    """The features of the first `streams` input streams (J, V, B, A) for counting."""
    if not 1 <= streams <= len(STREAM_ORDER):
        raise InputError(f"streams must be 1..{len(STREAM_ORDER)}, got {streams}")
    return FeatureConfig(streams=STREAM_ORDER[:streams])


def trace_counts(arch: Arch, layout: Layout | str, frames: int = WINDOW, streams: int = 4
                 ) -> tuple[dict, list[OpCount]]:
    """(variable shapes, thop op counts) of one batch-1 forward pass, without allocating anything."""
    if frames < 1:
        raise InputError(f"frames must be positive, got {frames}")
    layout = load_layout(layout)
    model = create_model(arch, layout, stream_features(streams))
    x = jax.ShapeDtypeStruct(input_shape(layout, stream_features(streams), frames), jnp.float32)
    with count_ops() as records:
        variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return variables, records


def count_params(params, exclude: tuple[str, ...] = ()) -> int:
    """Number of parameters in a tree of arrays or shapes, leaving out leaves named in `exclude`."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = getattr(path[-1], "key", None)
        if name not in exclude:
            total += int(np.prod(leaf.shape))
    return total


def xla_flops(arch: Arch, layout: Layout | str, frames: int = WINDOW, streams: int = 4,
              variables: dict | None = None) -> float:
    """XLA's FLOP estimate for the compiled batch-1 forward pass (evaluation mode)."""
    layout = load_layout(layout)
    model = create_model(arch, layout, stream_features(streams))
    if variables is None:
        variables, _ = trace_counts(arch, layout, frames, streams)
    x = jax.ShapeDtypeStruct(input_shape(layout, stream_features(streams), frames), jnp.float32)
    compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", 0.0))


def complexity(arch: Arch, layout: Layout | str, frames: int = WINDOW, streams: int = 4, *,
               xla: bool = True) -> dict:
    """{"params", "params_thop", "macs_thop", "flops_xla"} of a candidate for `frames`-frame windows."""
    variables, records = trace_counts(arch, layout, frames, streams)
    flops = xla_flops(arch, layout, frames, streams, variables) if xla else 0.0
    return {
        "params": count_params(variables["params"]),
        "params_thop": sum(r.params for r in records),
        "macs_thop": sum(r.macs for r in records),
        "flops_xla": flops,
    }


def breakdown(records: list[OpCount]) -> dict[str, tuple[int, int]]:
    """thop (MACs, params) per top-level part of the network (input streams, main blocks, classifier)."""
    parts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        part = parts[r.path.split("/")[0]]
        part[0] += r.macs
        part[1] += r.params
    return {name: (macs, params) for name, (macs, params) in parts.items()}
