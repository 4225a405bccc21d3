"""`Arch`: one candidate network of the search space, as a frozen, hashable spec.

The names a field may take come from the model's own tables (activations from `ops`, attention types from
`attention`, temporal layers from `temporal`), so adding a layer type there makes it a valid choice here;
the search space (`jaxcp.nas.space`) then only lists which choices it searches.
"""

from __future__ import annotations

import dataclasses

from jaxcp.core.fields import Rule, check_fields, fraction, odd, one_of, positive
from jaxcp.data.skeleton import MAX_HOP
from jaxcp.model.attention import ATTENTION_LAYERS
from jaxcp.model.ops import ACTIVATION_FNS
from jaxcp.model.temporal import TEMPORAL_LAYERS

ACTIVATIONS = tuple(ACTIVATION_FNS)
ATTENTIONS = tuple(ATTENTION_LAYERS)
CONVS = tuple(TEMPORAL_LAYERS)
VARIANTS = ("autocp", "corrected")


def _hops(v) -> bool:
    return 1 <= v <= MAX_HOP


ARCH_RULES: dict[str, Rule] = {
    "init_channels": (int, positive, "a positive integer"),
    "activation": (str, one_of(ACTIVATIONS), f"one of {list(ACTIVATIONS)}"),
    "attention": (str, one_of(ATTENTIONS), f"one of {list(ATTENTIONS)}"),
    "conv": (str, one_of(CONVS), f"one of {list(CONVS)}"),
    "dropout": (float, fraction, "a probability in [0, 1)"),
    "multi_gcn": (bool, lambda v: True, "true or false"),
    "expand_ratio": (float, positive, "a positive number"),
    "reduct_ratio": (float, positive, "a positive number"),
    "blocks_in": (int, positive, "a positive integer"),
    "depth_in": (int, positive, "a positive integer"),
    "stride_in": (int, positive, "a positive integer"),
    "scale_in": (float, positive, "a positive number"),
    "temporal_window_in": (int, odd, "an odd positive integer"),
    "graph_distance_in": (int, _hops, f"an integer in 1..{MAX_HOP}"),
    "blocks_main": (int, positive, "a positive integer"),
    "depth_main": (int, positive, "a positive integer"),
    "stride_main": (int, positive, "a positive integer"),
    "scale_main": (float, positive, "a positive number"),
    "temporal_window_main": (int, odd, "an odd positive integer"),
    "graph_distance_main": (int, _hops, f"an integer in 1..{MAX_HOP}"),
    "variant": (str, one_of(VARIANTS), f"one of {list(VARIANTS)}"),
}


@dataclasses.dataclass(frozen=True)
class Arch:
    """One candidate network: the 20 architecture decisions of Table I, plus the non-searched variant.

    `variant="autocp"` builds the network exactly as AutoCP's code does (quirks included); "corrected" gives
    main blocks `depth_main` temporal layers of the searched type, a gating V3 squeeze-excitation and a
    Shuffle layer that shuffles (see jaxcp/model).
    """

    init_channels: int
    activation: str
    attention: str
    conv: str
    dropout: float
    multi_gcn: bool
    expand_ratio: float
    reduct_ratio: float
    blocks_in: int
    depth_in: int
    stride_in: int
    scale_in: float
    temporal_window_in: int
    graph_distance_in: int
    blocks_main: int
    depth_main: int
    stride_main: int
    scale_main: float
    temporal_window_main: int
    graph_distance_main: int
    variant: str = "autocp"

    def __post_init__(self):
        check_fields(self, ARCH_RULES)


ARCH_DECISIONS = tuple(name for name in ARCH_RULES if name != "variant")
