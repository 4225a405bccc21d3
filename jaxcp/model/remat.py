"""Rematerialisation: layers whose intermediates are recomputed in the backward pass instead of kept.

`ModelOptions.remat` sets what is recomputed: "blocks" each block (spatial layer, temporal layers, attention) and the
two stem layers, keeping only block boundaries; "full" each LAYER separately (the stem layers and every layer inside
every block), keeping layer boundaries but never more than one layer's intermediates: at the paper's best
architecture this is the one that saves the most (one input block at 150 frames holds most of a step's memory).
`layer(cls, remats, ...)` builds a module of `cls` that is recomputed when the network's setting is in `remats`.
The two are not nested: a block rematerialised around rematerialised layers gave float32 gradients off by up to 10 %
on XLA:CPU (exact in float64), so each computation is recomputed at one level only.

Why not `nn.remat` (`jax.checkpoint`): XLA:CPU schedules the recomputation as soon as its inputs exist, i.e. during
the forward pass, and then keeps everything again (measured: no memory saved). Here the backward rule is written
out: the forward keeps only the layer's variables and input; the backward first ties that input to the incoming
cotangent (adds 0 x one of its elements, an exact no-op), so the recomputation can only run once the backward has
reached the layer, then recomputes the layer and takes its vjp. Same values as plain autodiff (the forward is the
same computation; the BatchNorm statistics come from the forward pass as usual). The recomputed layers must not
draw random numbers (none of a block's layers do; dropout is in the classifier).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax

from jaxcp.model.ops import wait_for
from jaxcp.model.options import current, using


def layer(cls: type[nn.Module], remats: tuple[str, ...], *args, train: bool, **fields) -> nn.Module:
    """A module `cls(*args, **fields)` (called as `m(x, train=...)`), rematerialised when the network's remat
    setting is one of `remats`. Parameter names and shapes do not depend on the remat setting."""
    if current().remat in remats and train:
        return remat_class(cls)(*args, **fields)
    return cls(*args, **fields)


@functools.cache
def remat_class(cls: type[nn.Module]) -> type[nn.Module]:
    """`cls` with a backward pass that recomputes the layer from its input (module doc)."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]

    class Remat(cls):
        def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:  # type: ignore[override]
            if self.is_initializing() or not train:
                return cls.__call__(self, x, train=train)
            options, fields = current(), {n: getattr(self, n) for n in names}

            def plain(module, x):
                return cls.__call__(module, x, train=True)

            def forward(module, x):
                variables = module.variables  # before the call: what the backward recomputes from
                return plain(module, x), (variables, x)

            def backward(residuals, g):
                variables, x = residuals
                x = wait_for(x, g)

                def recompute(params, x):
                    net = cls(**fields)
                    return net.apply({**variables, "params": params}, x, train=True, mutable=True)[0]

                with using(options):
                    _, vjp = jax.vjp(recompute, variables["params"], x)
                    g_params, g_x = vjp(g)
                return {"params": g_params}, g_x

            return nn.custom_vjp(plain, forward, backward)(self, x)

    Remat.__name__ = Remat.__qualname__ = f"Remat{cls.__name__}"
    return Remat
