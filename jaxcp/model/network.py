"""The candidate network (reference §4.1): input streams, fusion by concatenation, main stream, classifier.

x: (N, I, T, V, C) channels last -> logits (N, num_classes). Each input stream (own weights) is
BN -> spatial graph layer (C -> init_channels) -> Basic temporal layer -> input blocks; the stream
outputs are concatenated on channels and go through the main blocks (last one 48 channels), global
average pooling, dropout and a linear classifier. A block is spatial layer (graph conv or Multi-GCN) ->
temporal layers -> attention. The last main-stream feature map (N, T'', V, 48) is sown as
("intermediates", "features") for class-activation maps.

`Network.options` (`ModelOptions`) says how it is computed: layer formulations and matmul precision (read by
the primitives while the network traces) and rematerialisation (`remat`: "blocks" recomputes every block and stem
layer in the backward pass, "full" also every layer inside a block; `remat.layer`). The parameter tree is the
same for every option.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcp.data.features import CHANNELS_PER_STREAM, FeatureConfig
from jaxcp.data.skeleton import Layout, load_layout
from jaxcp.model.arch import Arch
from jaxcp.model.attention import AttentionLayer
from jaxcp.model.graph import MultiGCNLayer, SpatialGraphLayer
from jaxcp.model.ops import BatchNorm, Pointwise, record_avg_pool, replicate_counts
from jaxcp.model.options import ModelOptions, using
from jaxcp.model.plan import BlockSpec, input_blocks, main_blocks
from jaxcp.model.remat import layer
from jaxcp.model.temporal import BasicTemporal, temporal_class

CLASSIFIER_INIT_STD = 0.001
BLOCKS, LAYERS, STEM = ("blocks",), ("full",), ("blocks", "full")  # remat settings that recompute them


class Block(nn.Module):
    """Spatial layer -> temporal layers -> attention. x: (N, T, V, C_in) -> (N, T', V, C_out)."""

    spec: BlockSpec
    arch: Arch
    layout: Layout

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        spec, arch = self.spec, self.arch
        if spec.multi_gcn:
            gcn = layer(MultiGCNLayer, LAYERS, spec.out_channels, self.layout, arch.activation, train=train, name="gcn")
        else:
            gcn = layer(SpatialGraphLayer, LAYERS, spec.out_channels, spec.graph_distance, self.layout,
                        arch.activation, train=train, name="gcn")
        x = gcn(x, train=train)
        for j, temporal in enumerate(spec.temporal):
            tcn = layer(temporal_class(temporal.conv), LAYERS, window=temporal.window, stride=temporal.stride,
                        activation=arch.activation, expand_ratio=arch.expand_ratio,
                        reduct_ratio=arch.reduct_ratio, variant=arch.variant, train=train, name=f"tcn{j}")
            x = tcn(x, train=train)
        attention = layer(AttentionLayer, LAYERS, arch.attention, arch.activation, arch.reduct_ratio, self.layout,
                          train=train, name="att")
        return attention(x, train=train)


class InputStream(nn.Module):
    """BN -> stem graph layer -> stem Basic temporal layer -> input blocks. (N, T, V, C) -> (N, T', V, C')."""

    arch: Arch
    layout: Layout

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        a = self.arch
        x = BatchNorm(name="init_bn")(x, train=train)
        x = layer(SpatialGraphLayer, STEM, a.init_channels, a.graph_distance_in, self.layout, a.activation,
                  train=train, name="stem_gcn")(x, train=train)
        x = layer(BasicTemporal, STEM, a.temporal_window_in, activation=a.activation, train=train,
                  name="stem_tcn")(x, train=train)
        for b, spec in enumerate(input_blocks(a)):
            x = layer(Block, BLOCKS, spec, a, self.layout, train=train, name=f"block{b}")(x, train=train)
        return x


class _TrainModeStream(InputStream):
    """An InputStream with the mode as a field, so that `nn.vmap` maps only over the input array."""

    train: bool = False

    def __call__(self, x: jax.Array) -> jax.Array:  # type: ignore[override]
        return InputStream.__call__(self, x, train=self.train)


STREAM_AXES = {"params": 0, "batch_stats": 0}
STREAM_RNGS = {"params": True, "dropout": True}


class InputStreams(nn.Module):
    """The `streams` input streams as ONE module vmapped over the stream axis (own weights per stream).

    Each variable gets a leading stream axis (params["input"][...] of shape (streams, ...)); XLA sees one
    copy of the stream's computation instead of `streams` copies, which shrinks the program and its
    compile time. thop counts are recorded once per stream under "input0", "input1", ...
    x: (N, streams, T, V, C) -> (N, T', V, streams x C').
    """

    arch: Arch
    layout: Layout
    streams: int

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        stacked = nn.vmap(_TrainModeStream, in_axes=1, out_axes=0, axis_size=self.streams,
                          variable_axes=STREAM_AXES, split_rngs=STREAM_RNGS)
        with replicate_counts(self.streams):
            h = stacked(self.arch, self.layout, train, name="stream")(x)  # (streams, N, T', V, C')
        return jnp.moveaxis(h, 0, -2).reshape(*h.shape[1:-1], self.streams * h.shape[-1])


class Classifier(nn.Module):
    """Global average pool over (T, V) -> dropout -> linear (a 1x1x1 conv in AutoCP). -> (N, classes)."""

    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        pooled = x.mean(axis=(1, 2))
        record_avg_pool(self, x.size, pooled.size)
        if self.dropout > 0:
            pooled = nn.Dropout(self.dropout, name="dropout")(pooled, deterministic=not train)
        return Pointwise(self.num_classes, init_std=CLASSIFIER_INIT_STD, name="fc")(pooled)


class Network(nn.Module):
    """The whole candidate. x: (N, streams, T, V, in_channels) -> logits (N, num_classes).

    BatchNorm state in "batch_stats", dropout rng "dropout". `options`: how it is computed (module doc).
    """

    arch: Arch
    layout: Layout
    streams: int = 4
    in_channels: int = 4
    num_classes: int = 2
    options: ModelOptions = ModelOptions()

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        with using(self.options):
            return self.forward(x, train=train)

    @nn.compact
    def forward(self, x: jax.Array, *, train: bool) -> jax.Array:
        expected = (self.streams, self.layout.num_joints, self.in_channels)
        if x.ndim != 5 or (x.shape[1], x.shape[3], x.shape[4]) != expected:
            raise ValueError(f"expected input (N, {self.streams}, T, {self.layout.num_joints}, "
                             f"{self.in_channels}), got {x.shape}")
        h = InputStreams(self.arch, self.layout, self.streams, name="input")(x, train=train)
        for b, spec in enumerate(main_blocks(self.arch, h.shape[-1])):
            h = layer(Block, BLOCKS, spec, self.arch, self.layout, train=train, name=f"main{b}")(h, train=train)
        self.sow("intermediates", "features", h)
        return Classifier(self.num_classes, self.arch.dropout, name="classifier")(h, train=train)


ALL_STREAMS = FeatureConfig()
DEFAULT_OPTIONS = ModelOptions()


def create_model(arch: Arch, layout: Layout | str, features: FeatureConfig = ALL_STREAMS, *,
                 num_classes: int = 2, options: ModelOptions = DEFAULT_OPTIONS) -> Network:
    """The Flax network of a candidate for the input streams of `features` (default all four); call it as
    `model.apply(variables, x, train=...)` with x: (N, features.num_streams, T, V, 4)."""
    return Network(arch, load_layout(layout), streams=features.num_streams, in_channels=CHANNELS_PER_STREAM,
                   num_classes=num_classes, options=options)


def input_shape(layout: Layout, features: FeatureConfig, window: int, batch: int = 1) -> tuple[int, ...]:
    """(batch, streams, window, V, 4): the shape of the network's input."""
    return (batch, features.num_streams, window, layout.num_joints, CHANNELS_PER_STREAM)
