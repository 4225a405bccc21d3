"""Field rules for frozen specs: one (type, check, description) per field.

The same rules check a dataclass when it is built (`check_fields` in `__post_init__`), the choices of a
search-space file and the values of an architecture file, so that every bad value is reported the same way:
`<where>: <name> must be <description>, got <value>`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxcp.core.errors import InputError

Rule = tuple[type, Callable[[Any], bool], str]


def positive(v) -> bool:
    return v > 0


def odd(v) -> bool:
    return v > 0 and v % 2 == 1


def fraction(v) -> bool:
    return 0.0 <= v < 1.0


def non_negative(v) -> bool:
    return v >= 0.0


def anything(v) -> bool:
    return True


def one_of(names: tuple[str, ...]) -> Callable[[str], bool]:
    return lambda v: v in names


def check_value(rules: Mapping[str, Rule], name: str, value: Any, where: str) -> Any:
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


def check_fields(obj: Any, rules: Mapping[str, Rule]) -> None:
    """Check (and coerce in place) every field of a frozen dataclass that has a rule."""
    for name in rules:
        value = check_value(rules, name, getattr(obj, name), type(obj).__name__)
        object.__setattr__(obj, name, value)


def check_sections(data: Mapping, path, required: tuple[str, ...]) -> None:
    """A YAML file's top level must be exactly the `required` sections, each a mapping."""
    unknown = sorted(set(data) - set(required))
    if unknown:
        raise InputError(f"{path}: unknown section {unknown[0]!r} (expected {', '.join(required)})")
    for section in required:
        if not isinstance(data.get(section), Mapping):
            raise InputError(f"{path}: missing section {section!r} (a mapping of names)")


def check_keys(section: Mapping, names: Sequence[str], where: str, optional: Sequence[str] = ()) -> None:
    """A section must hold every name of `names`, may hold those of `optional`, and nothing else."""
    unknown = sorted(set(section) - set(names) - set(optional))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(names)})")
    missing = [n for n in names if n not in section]
    if missing:
        raise InputError(f"{where}.{missing[0]}: missing key")


def section_values(section: Mapping, rules: Mapping[str, Rule], names: Sequence[str], where: str,
                   optional: Sequence[str] = ()) -> dict:
    """The checked values of a section whose keys are field names."""
    check_keys(section, names, where, optional)
    return {name: check_value(rules, name, value, where) for name, value in section.items()}
