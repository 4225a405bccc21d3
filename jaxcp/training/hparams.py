"""`HParams`: the searched training hyperparameters of one student, as a frozen, hashable spec.

The optimizer names come from `jaxcp.training.optim.OPTIMIZERS`, the one table of optimizers.
"""

from __future__ import annotations

import dataclasses

from jaxcp.core.fields import Rule, check_fields, fraction, non_negative, one_of, positive
from jaxcp.training.optim import OPTIMIZERS

HPARAM_RULES: dict[str, Rule] = {
    "optimizer": (str, one_of(OPTIMIZERS), f"one of {list(OPTIMIZERS)}"),
    "lr": (float, positive, "a positive number"),
    "weight_decay": (float, non_negative, "a non-negative number"),
    "momentum": (float, fraction, "a number in [0, 1)"),
    "batch_size": (int, positive, "a positive integer"),
}


@dataclasses.dataclass(frozen=True)
class HParams:
    """The searched training hyperparameters of one student."""

    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    batch_size: int

    def __post_init__(self):
        check_fields(self, HPARAM_RULES)


HPARAM_DECISIONS = tuple(HPARAM_RULES)
