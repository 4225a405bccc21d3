"""The search space: architecture and hyperparameter specs, decisions, encode/decode, sampling, arch files.

An `Arch` is one candidate network (20 named decisions of the paper's Table I plus the non-searched
`variant`); `HParams` are the 5 searched training hyperparameters. Both are frozen and hashable, so they can
be Flax module fields, `jit` static arguments and cache keys. A `SearchSpace` is the ordered list of
decisions read from `configs/space/autocp.yaml`: `decode(indices) -> (Arch, HParams)` and
`encode(arch, hparams) -> indices` round-trip by field name, never by dict order.

Arch files are YAML with two sections, `arch:` and `hparams:` (see `arch_file_text`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import yaml

from jaxcp.config import load_yaml, to_dict
from jaxcp.errors import InputError
from jaxcp.skeleton import MAX_HOP

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_SPACE = CONFIG_DIR / "space" / "autocp.yaml"

ACTIVATIONS = ("relu", "relu6", "hardswish", "swish")
ATTENTIONS = ("stja", "ca", "fa", "ja", "pa")
CONVS = ("basic", "bottleneck", "sep", "sg", "v3", "shuffle")
VARIANTS = ("autocp", "corrected")
OPTIMIZERS = ("sgd", "adam", "adamw")


# --------------------------------------------------------------------------------------------------------
# Field rules: one (type, check, description) per field, shared by the dataclasses, space files and arch files

def _positive(v) -> bool:
    return v > 0


def _odd(v) -> bool:
    return v > 0 and v % 2 == 1


def _hops(v) -> bool:
    return 1 <= v <= MAX_HOP


def _fraction(v) -> bool:
    return 0.0 <= v < 1.0


def _non_negative(v) -> bool:
    return v >= 0.0


def _one_of(names: tuple[str, ...]) -> Callable[[str], bool]:
    return lambda v: v in names


_Rule = tuple[type, Callable[[Any], bool], str]

ARCH_RULES: dict[str, _Rule] = {
    "init_channels": (int, _positive, "a positive integer"),
    "activation": (str, _one_of(ACTIVATIONS), f"one of {list(ACTIVATIONS)}"),
    "attention": (str, _one_of(ATTENTIONS), f"one of {list(ATTENTIONS)}"),
    "conv": (str, _one_of(CONVS), f"one of {list(CONVS)}"),
    "dropout": (float, _fraction, "a probability in [0, 1)"),
    "multi_gcn": (bool, lambda v: True, "true or false"),
    "expand_ratio": (float, _positive, "a positive number"),
    "reduct_ratio": (float, _positive, "a positive number"),
    "blocks_in": (int, _positive, "a positive integer"),
    "depth_in": (int, _positive, "a positive integer"),
    "stride_in": (int, _positive, "a positive integer"),
    "scale_in": (float, _positive, "a positive number"),
    "temporal_window_in": (int, _odd, "an odd positive integer"),
    "graph_distance_in": (int, _hops, f"an integer in 1..{MAX_HOP}"),
    "blocks_main": (int, _positive, "a positive integer"),
    "depth_main": (int, _positive, "a positive integer"),
    "stride_main": (int, _positive, "a positive integer"),
    "scale_main": (float, _positive, "a positive number"),
    "temporal_window_main": (int, _odd, "an odd positive integer"),
    "graph_distance_main": (int, _hops, f"an integer in 1..{MAX_HOP}"),
    "variant": (str, _one_of(VARIANTS), f"one of {list(VARIANTS)}"),
}

HPARAM_RULES: dict[str, _Rule] = {
    "optimizer": (str, _one_of(OPTIMIZERS), f"one of {list(OPTIMIZERS)}"),
    "lr": (float, _positive, "a positive number"),
    "weight_decay": (float, _non_negative, "a non-negative number"),
    "momentum": (float, _fraction, "a number in [0, 1)"),
    "batch_size": (int, _positive, "a positive integer"),
}


def check_value(rules: Mapping[str, _Rule], name: str, value: Any, where: str) -> Any:
    """`value` coerced to the field's type (ints to floats, names to lower case), or an InputError."""
    kind, ok, description = rules[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and isinstance(value, str):
        value = value.lower()
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"{where}: {name} must be {description}, got {value!r}")
    if (kind is float and not math.isfinite(value)) or not ok(value):
        raise InputError(f"{where}: {name} must be {description}, got {value!r}")
    return value


def _check_fields(obj: Any, rules: Mapping[str, _Rule]) -> None:
    for name in rules:
        value = check_value(rules, name, getattr(obj, name), type(obj).__name__)
        object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------------------------------------
# Specs

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
        _check_fields(self, ARCH_RULES)


@dataclasses.dataclass(frozen=True)
class HParams:
    """The searched training hyperparameters of one student."""

    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    batch_size: int

    def __post_init__(self):
        _check_fields(self, HPARAM_RULES)


ARCH_DECISIONS = tuple(name for name in ARCH_RULES if name != "variant")
HPARAM_DECISIONS = tuple(HPARAM_RULES)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One searched decision: a field name of `Arch` or `HParams` and its ordered choices."""

    name: str
    choices: tuple

    @property
    def num_choices(self) -> int:
        return len(self.choices)

    def index(self, value: Any, where: str = "search space") -> int:
        """Position of `value` among the choices (floats compared with a relative tolerance)."""
        for i, choice in enumerate(self.choices):
            if _same(choice, value):
                return i
        raise InputError(f"{where}: {self.name} = {value!r} is not in the search space "
                         f"(choices: {list(self.choices)})")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Ordered decisions: the architecture decisions, then the hyperparameter decisions."""

    arch: tuple[Decision, ...]
    hparams: tuple[Decision, ...]

    def __post_init__(self):
        if sorted(d.name for d in self.arch) != sorted(ARCH_DECISIONS):
            raise InputError(f"search space: arch decisions must be exactly {list(ARCH_DECISIONS)}")
        if sorted(d.name for d in self.hparams) != sorted(HPARAM_DECISIONS):
            raise InputError(f"search space: hparams decisions must be exactly {list(HPARAM_DECISIONS)}")

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return self.arch + self.hparams

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions)

    @property
    def num_choices(self) -> tuple[int, ...]:
        return tuple(d.num_choices for d in self.decisions)

    @property
    def num_options(self) -> int:
        """Total number of options over all decisions (89 for the paper's space)."""
        return sum(self.num_choices)

    @property
    def size(self) -> int:
        """Number of distinct (Arch, HParams) combinations."""
        return math.prod(self.num_choices)

    def decode(self, indices: Sequence[int], *, variant: str = "autocp") -> tuple[Arch, HParams]:
        """Choice indices, one per decision in order -> (Arch, HParams)."""
        indices = [int(i) for i in indices]
        if len(indices) != len(self.decisions):
            raise InputError(f"decode: expected {len(self.decisions)} indices, got {len(indices)}")
        values = {}
        for d, i in zip(self.decisions, indices, strict=True):
            if not 0 <= i < d.num_choices:
                raise InputError(f"decode: index {i} of {d.name} is outside 0..{d.num_choices - 1}")
            values[d.name] = d.choices[i]
        arch = Arch(**{n: values[n] for n in ARCH_DECISIONS}, variant=variant)
        return arch, HParams(**{n: values[n] for n in HPARAM_DECISIONS})

    def encode(self, arch: Arch, hparams: HParams, where: str = "encode") -> tuple[int, ...]:
        """(Arch, HParams) -> choice indices; an InputError names any value outside the space."""
        arch_idx = tuple(d.index(getattr(arch, d.name), where) for d in self.arch)
        return arch_idx + tuple(d.index(getattr(hparams, d.name), where) for d in self.hparams)

    def validate(self, arch: Arch, hparams: HParams | None = None, where: str = "search space") -> None:
        """Raise an InputError naming the first field whose value is not a choice of the space."""
        for d in self.arch:
            d.index(getattr(arch, d.name), where)
        for d in self.hparams if hparams is not None else ():
            d.index(getattr(hparams, d.name), where)

    def sample(self, key: jax.Array) -> jax.Array:
        """(D,) int32 choice indices drawn uniformly and independently per decision."""
        return jax.random.randint(key, (len(self.decisions),), 0, jnp.asarray(self.num_choices))

    def sample_many(self, key: jax.Array, n: int) -> jax.Array:
        """(n, D) int32: `n` independent uniform samples."""
        return jax.random.randint(key, (n, len(self.decisions)), 0, jnp.asarray(self.num_choices))


# --------------------------------------------------------------------------------------------------------
# Files

def load_space(path: str | Path | None = None) -> SearchSpace:
    """Read a search-space YAML (sections `arch:` and `hparams:`, each name -> list of choices)."""
    path = Path(path) if path is not None else DEFAULT_SPACE
    data = load_yaml(path)
    _check_sections(data, path, required=("arch", "hparams"))
    arch = _decisions(data["arch"], ARCH_RULES, ARCH_DECISIONS, f"{path}: arch")
    hparams = _decisions(data["hparams"], HPARAM_RULES, HPARAM_DECISIONS, f"{path}: hparams")
    return SearchSpace(arch=arch, hparams=hparams)


def _check_sections(data: Mapping, path: Path, required: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(required))
    if unknown:
        raise InputError(f"{path}: unknown section {unknown[0]!r} (expected {', '.join(required)})")
    for section in required:
        if not isinstance(data.get(section), Mapping):
            raise InputError(f"{path}: missing section {section!r} (a mapping of names)")


def _decisions(section: Mapping, rules: Mapping[str, _Rule], names: tuple[str, ...],
               where: str) -> tuple[Decision, ...]:
    _check_keys(section, names, where)
    out = []
    for name, choices in section.items():
        if not isinstance(choices, list) or not choices:
            raise InputError(f"{where}.{name}: expected a non-empty list of choices")
        values = tuple(check_value(rules, name, v, f"{where}.{name}") for v in choices)
        if any(_same(a, b) for i, a in enumerate(values) for b in values[i + 1:]):
            raise InputError(f"{where}.{name}: duplicate choices {list(values)}")
        out.append(Decision(name, values))
    return tuple(out)


def _check_keys(section: Mapping, names: Sequence[str], where: str, optional: Sequence[str] = ()) -> None:
    unknown = sorted(set(section) - set(names) - set(optional))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(names)})")
    missing = [n for n in names if n not in section]
    if missing:
        raise InputError(f"{where}.{missing[0]}: missing key")


def load_arch_file(path: str | Path, space: SearchSpace | None = None) -> tuple[Arch, HParams]:
    """Read an arch file; unknown keys, missing keys and values outside the space name the file and key."""
    path = Path(path)
    data = load_yaml(path)
    _check_sections(data, path, required=("arch", "hparams"))
    arch_values = _section_values(data["arch"], ARCH_RULES, ARCH_DECISIONS, f"{path}: arch", ("variant",))
    hparam_values = _section_values(data["hparams"], HPARAM_RULES, HPARAM_DECISIONS, f"{path}: hparams")
    arch, hparams = Arch(**arch_values), HParams(**hparam_values)
    space = space if space is not None else load_space()
    for section, obj, decisions in (("arch", arch, space.arch), ("hparams", hparams, space.hparams)):
        for d in decisions:
            d.index(getattr(obj, d.name), f"{path}: {section}")
    return arch, hparams


def _section_values(section: Mapping, rules, names, where: str, optional: Sequence[str] = ()) -> dict:
    _check_keys(section, names, where, optional)
    return {name: check_value(rules, name, value, where) for name, value in section.items()}


def arch_file_text(arch: Arch, hparams: HParams) -> str:
    """The YAML text of an arch file holding `arch` and `hparams` (read back by `load_arch_file`)."""
    header = "# jaxcp architecture file: one candidate of the search space (see configs/space/autocp.yaml)\n"
    body = yaml.safe_dump({"arch": to_dict(arch), "hparams": to_dict(hparams)}, sort_keys=False)
    return header + body
