"""Where a training run's arrays live: one device, or the student axis split over several devices.

A `Placement` of one device puts everything of a run there (`jax.device_put`), so its compiled programs run
on that device; the search trains one group of students per device at a time (`jaxcp.training.parallel`).
A `Placement` of D devices is a 1-D mesh over the student axis (`NamedSharding`, axis "students"): arrays
with a leading student axis are split into D equal blocks, everything else (the training and validation data,
the learning-rate factor) is replicated, and XLA partitions the vmapped programs without any communication
between the students. `shard_students` chooses for `jaxcp train --seeds N` and `jaxcp crossval`: every
local device when the student count is a multiple of their count, else one device. A run on one device
gives the same numbers on any device (bit-identical on CPU); a sharded run is another compiled program and
agrees with one device to float32 rounding (`tests/test_devices.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

STUDENT_AXIS = "students"


@dataclasses.dataclass(frozen=True)
class Placement:
    """The devices of one run (hashable: part of the compiled-program cache key)."""

    devices: tuple[jax.Device, ...]

    def __post_init__(self):
        if not self.devices:
            raise ValueError("a placement needs at least one device")

    @property
    def students(self) -> jax.sharding.Sharding:
        """How an array with a leading student axis is laid out."""
        if len(self.devices) == 1:
            return SingleDeviceSharding(self.devices[0])
        mesh = Mesh(np.asarray(self.devices), (STUDENT_AXIS,))
        return NamedSharding(mesh, PartitionSpec(STUDENT_AXIS))

    @property
    def replicated(self) -> jax.sharding.Sharding:
        """How an array shared by all students is laid out (a full copy on every device)."""
        if len(self.devices) == 1:
            return SingleDeviceSharding(self.devices[0])
        return NamedSharding(Mesh(np.asarray(self.devices), (STUDENT_AXIS,)), PartitionSpec())

    def put_students(self, tree: Any) -> Any:
        """`tree`'s arrays (leading axis: students) on the placement; a no-op for arrays already there."""
        return jax.device_put(tree, self.students)

    def put_replicated(self, tree: Any) -> Any:
        return jax.device_put(tree, self.replicated)


def on_device(device: jax.Device) -> Placement:
    return Placement((device,))


def shard_students(num_students: int, devices: Sequence[jax.Device] | None = None) -> Placement | None:
    """The student axis over all of `devices` (default: `jax.local_devices()`) when there are several and
    `num_students` is a multiple of their count; else None (one device, JAX's default placement)."""
    devices = tuple(jax.local_devices() if devices is None else devices)
    if len(devices) > 1 and num_students % len(devices) == 0:
        return Placement(devices)
    return None
