"""The block structure of a candidate: channel widths, temporal layers and strides, from an `Arch`.

Pure functions of the spec (reference §4.6), so that the structure can be checked without building
the network. Input blocks: c_{b+1} = max(int(round(c_b * scale_in / 16)) * 16, 32); main blocks:
c = 48 for the last, else min(int(round(c_prev * scale_main / 16)) * 16, 128), with Python's round
(banker's rounding) on the float product in AutoCP's order of operations.
"""

from __future__ import annotations

import dataclasses

from jaxcp.model.arch import Arch
from jaxcp.model.ops import output_frames

MIN_INPUT_CHANNELS = 32
MAX_MAIN_CHANNELS = 128
FINAL_CHANNELS = 48
CHANNEL_STEP = 16


@dataclasses.dataclass(frozen=True)
class TemporalSpec:
    """One temporal layer: its type, kernel size and stride."""

    conv: str
    window: int
    stride: int


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One block: spatial layer (c_in -> c_out), temporal layers, then attention (at c_out)."""

    in_channels: int
    out_channels: int
    graph_distance: int
    multi_gcn: bool
    temporal: tuple[TemporalSpec, ...]


def scaled_channels(channels: int, scale: float) -> int:
    return int(round(channels * scale / CHANNEL_STEP)) * CHANNEL_STEP


def input_blocks(arch: Arch) -> tuple[BlockSpec, ...]:
    """The blocks of each input stream after its stem (depth_in layers of the searched type each)."""
    blocks, c = [], arch.init_channels
    for _ in range(arch.blocks_in):
        out = max(scaled_channels(c, arch.scale_in), MIN_INPUT_CHANNELS)
        temporal = tuple(TemporalSpec(arch.conv, arch.temporal_window_in, arch.stride_in if j == 0 else 1)
                         for j in range(arch.depth_in))
        blocks.append(BlockSpec(c, out, arch.graph_distance_in, arch.multi_gcn, temporal))
        c = out
    return tuple(blocks)


def input_stream_channels(arch: Arch) -> int:
    """Output width of one input stream."""
    blocks = input_blocks(arch)
    return blocks[-1].out_channels if blocks else arch.init_channels


def main_blocks(arch: Arch, in_channels: int) -> tuple[BlockSpec, ...]:
    """The main-stream blocks for a fused input of `in_channels` channels.

    variant autocp: one Basic temporal layer per block, stride_main only if depth_main == 1 (AutoCP's
    duplicate module name keeps the last of the depth_main layers, §9.1); corrected: depth_main layers
    of the searched type, stride_main on the first.
    """
    blocks, c = [], in_channels
    for b in range(arch.blocks_main):
        last = b == arch.blocks_main - 1
        out = FINAL_CHANNELS if last else min(scaled_channels(c, arch.scale_main), MAX_MAIN_CHANNELS)
        if out < 1:
            raise ValueError(f"main block {b} would have {out} channels (input {c}, scale {arch.scale_main})")
        blocks.append(BlockSpec(c, out, arch.graph_distance_main, arch.multi_gcn, _main_temporal(arch)))
        c = out
    return tuple(blocks)


def _main_temporal(arch: Arch) -> tuple[TemporalSpec, ...]:
    k = arch.temporal_window_main
    if arch.variant == "corrected":
        return tuple(TemporalSpec(arch.conv, k, arch.stride_main if j == 0 else 1)
                     for j in range(arch.depth_main))
    return (TemporalSpec("basic", k, arch.stride_main if arch.depth_main == 1 else 1),)


def block_frames(frames: int, blocks: tuple[BlockSpec, ...]) -> tuple[int, ...]:
    """Frames after each block for an input of `frames` frames."""
    out = []
    for block in blocks:
        for layer in block.temporal:
            frames = output_frames(frames, layer.window, layer.stride)
        out.append(frames)
    return tuple(out)
