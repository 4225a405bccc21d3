"""The search space: decisions, encode/decode, sampling, and architecture files.

A candidate is an `Arch` (`jaxcp.model.arch`: 20 named decisions of the paper's Table I plus the
non-searched `variant`) and its `HParams` (`jaxcp.training.hparams`: 5 searched training hyperparameters).
A `SearchSpace` is the ordered list of decisions read from `configs/space/autocp.yaml`, each choice checked
by the field's rule (so only layer types the model implements can be listed):
`decode(indices) -> (Arch, HParams)` and `encode(arch, hparams) -> indices` round-trip by field name, never
by dict order.

Arch files (`jaxcp.training.archfile`) are checked against a space with `load_arch_file` (the candidate) or
`read_arch_spec` (the candidate and the input settings it was found with).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxcp.core.config import CONFIG_DIR, load_yaml, resolve_config_path
from jaxcp.core.errors import InputError
from jaxcp.core.fields import Rule, check_keys, check_sections, check_value
from jaxcp.model.arch import ARCH_DECISIONS, ARCH_RULES, Arch
from jaxcp.training.archfile import ArchFile, arch_file_text, parse_arch_file, read_arch_file
from jaxcp.training.hparams import HPARAM_DECISIONS, HPARAM_RULES, HParams

__all__ = ["DEFAULT_SPACE", "ArchFile", "Decision", "SearchSpace", "arch_file_text", "load_arch_file", "load_space",
           "read_arch", "read_arch_file", "read_arch_spec"]

DEFAULT_SPACE = CONFIG_DIR / "space" / "autocp.yaml"


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
    check_sections(data, path, required=("arch", "hparams"))
    arch = _decisions(data["arch"], ARCH_RULES, ARCH_DECISIONS, f"{path}: arch")
    hparams = _decisions(data["hparams"], HPARAM_RULES, HPARAM_DECISIONS, f"{path}: hparams")
    if path.resolve() != DEFAULT_SPACE.resolve():
        _check_table_one(arch, load_space(DEFAULT_SPACE).arch, path)
    return SearchSpace(arch=arch, hparams=hparams)


def _check_table_one(arch: tuple[Decision, ...], paper: tuple[Decision, ...], path: Path) -> None:
    """A user's space may search any subset of the paper's architecture choices (Table I, the values the
    network is built and checked for), and any training hyperparameters."""
    allowed = {d.name: d.choices for d in paper}
    for d in arch:
        outside = [c for c in d.choices if not any(_same(c, a) for a in allowed[d.name])]
        if outside:
            raise InputError(f"{path}: arch.{d.name} = {outside[0]!r} is outside the paper's Table I "
                             f"(choices: {list(allowed[d.name])}), the values the network is built for")


def _decisions(section: Mapping, rules: Mapping[str, Rule], names: tuple[str, ...],
               where: str) -> tuple[Decision, ...]:
    check_keys(section, names, where)
    out = []
    for name, choices in section.items():
        if not isinstance(choices, list) or not choices:
            raise InputError(f"{where}.{name}: expected a non-empty list of choices")
        values = tuple(check_value(rules, name, v, f"{where}.{name}") for v in choices)
        if any(_same(a, b) for i, a in enumerate(values) for b in values[i + 1:]):
            raise InputError(f"{where}.{name}: duplicate choices {list(values)}")
        out.append(Decision(name, values))
    return tuple(out)


def load_arch_file(path: str | Path, space: SearchSpace | None = None) -> tuple[Arch, HParams]:
    """Read an arch file whose candidate must lie in `space` (default: the paper's); unknown keys, missing
    keys and values outside the space name the file and key."""
    arch, hparams = read_arch_file(path)
    check_in_space(arch, hparams, space if space is not None else load_space(), path)
    return arch, hparams


def check_in_space(arch: Arch, hparams: HParams, space: SearchSpace, path: str | Path) -> None:
    for section, obj, decisions in (("arch", arch, space.arch), ("hparams", hparams, space.hparams)):
        for d in decisions:
            d.index(getattr(obj, d.name), f"{path}: {section}")


def read_arch_spec(path: str | Path, space: str) -> ArchFile:
    """An arch file with its input settings (`features`, `window`, `hop`), its candidate checked against a
    search space given by name or file (`none`: only the values' own rules)."""
    spec = parse_arch_file(path)
    if space != "none":
        check_in_space(spec.arch, spec.hparams, load_space(resolve_config_path(space, "space")), path)
    return spec


def read_arch(path: str | Path, space: str) -> tuple[Arch, HParams]:
    """The candidate of `read_arch_spec` (arch and hparams)."""
    spec = read_arch_spec(path, space)
    return spec.arch, spec.hparams
