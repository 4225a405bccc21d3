"""AutoCP's training augmentation (reference section 3.2): rotation, scale, translation on device.

One draw per window, the same for all its frames and joints, each value uniform over its grid:

- rotation by a in {-60, -50, ..., 60} degrees, applied as theta = radians(-a) about the ORIGIN:
  x' = cos(theta) x - sin(theta) y, y' = sin(theta) x + cos(theta) y;
- then scale by s in {0.7, 0.8, ..., 1.3};
- then translation by dx, dy, each independently in {-0.4, -0.3, ..., 0.4}.

The grids are settings (`AugmentConfig`); the draws come from a JAX PRNG key, so `augment` runs inside
jitted training code.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxcp.core.errors import InputError

ROTATIONS_DEG = tuple(float(a) for a in range(-60, 61, 10))
SCALES = tuple(round(0.7 + 0.1 * i, 1) for i in range(7))
TRANSLATIONS = tuple(round(-0.4 + 0.1 * i, 1) for i in range(9))


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """The grids that augmentation draws from (a hashable, static spec).

    Attributes:
      rotations_deg: rotation angles a in degrees (applied as -a, counter-clockwise positive).
      scales: scale factors (> 0).
      translations: shifts, used for dx and dy independently.
    """

    rotations_deg: tuple[float, ...] = ROTATIONS_DEG
    scales: tuple[float, ...] = SCALES
    translations: tuple[float, ...] = TRANSLATIONS

    def __post_init__(self):
        for name in ("rotations_deg", "scales", "translations"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values:
                raise InputError(f"augment.{name}: needs at least one value")
            object.__setattr__(self, name, values)
        if min(self.scales) <= 0:
            raise InputError(f"augment.scales {list(self.scales)}: scales must be > 0")


class AugmentParams(NamedTuple):
    """One draw per window: angle_deg (...,), scale (...,), shift (..., 2) as (dx, dy)."""

    angle_deg: jax.Array
    scale: jax.Array
    shift: jax.Array


def _choose(key: jax.Array, grid: tuple[float, ...], shape: tuple[int, ...]) -> jax.Array:
    index = jax.random.randint(key, shape, 0, len(grid))
    return jnp.asarray(grid, jnp.float32)[index]


def sample_augment_params(key: jax.Array, batch_shape: tuple[int, ...],
                          config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """Draw rotation, scale and translation for each of `batch_shape` windows, uniformly on the grids."""
    angle_key, scale_key, shift_key = jax.random.split(key, 3)
    return AugmentParams(
        angle_deg=_choose(angle_key, config.rotations_deg, batch_shape),
        scale=_choose(scale_key, config.scales, batch_shape),
        shift=_choose(shift_key, config.translations, (*batch_shape, 2)),
    )


def apply_augment(windows: jax.Array, params: AugmentParams) -> jax.Array:
    """Rotate (by -angle, about the origin), then scale, then translate each window.

    windows: (..., T, V, 2) x, y; params: one draw per window (leading axes `...`).
    """
    theta = jnp.deg2rad(-params.angle_deg)[..., None, None]
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    x, y = windows[..., 0], windows[..., 1]
    scale = params.scale[..., None, None]
    shift = params.shift[..., None, None, :]
    rotated = jnp.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)
    return rotated * scale[..., None] + shift


def augment(key: jax.Array, windows: jax.Array, config: AugmentConfig = AugmentConfig()) -> jax.Array:
    """(..., T, V, 2) windows -> the same windows, each randomly rotated, scaled and shifted."""
    windows = jnp.asarray(windows)
    params = sample_augment_params(key, windows.shape[:-3], config)
    return apply_augment(windows, params).astype(windows.dtype)
