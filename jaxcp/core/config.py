"""YAML configs read into frozen dataclasses, with `--set key=value` overrides; plain data out.

Every config section is a frozen dataclass. `from_dict` rejects unknown keys and values of the wrong
type with a message naming the key; `apply_overrides` edits a nested mapping from `a.b=value` strings
(values parsed as YAML scalars). Files are read with `yaml.safe_load` only.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from jaxcp.core.errors import InputError

T = TypeVar("T")
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def resolve_config_path(name_or_path: str, kind: str) -> Path:
    """`quick` -> configs/<kind>/quick.yaml; anything with a suffix or a slash is a path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        return path
    path = CONFIG_DIR / kind / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))
        raise InputError(f"{kind} config {name_or_path!r} not found (known: {', '.join(known)})")
    return path


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with `safe_load`; an empty file is an empty mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read file ({type(error).__name__})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        if isinstance(error, yaml.constructor.ConstructorError) and "tag" in str(error.problem):
            raise InputError(f"{path}: YAML tags such as '!!python/object' are not allowed{where}") from None
        raise InputError(f"{path}: malformed YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of keys at the top level")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=5' -> (['train', 'epochs'], 5)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set {text!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(mapping: Mapping, overrides: Iterable[str]) -> dict:
    """A copy of a nested mapping with `a.b=value` overrides applied."""
    out = _deep_copy(mapping)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InputError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(mapping: Mapping) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}


def from_dict(cls: type[T], data: Mapping | None, source: str = "config") -> T:
    """Build the frozen dataclass `cls` from a mapping, checking keys and types recursively."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: expected a mapping for {cls.__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{source}: {name}")
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise InputError(f"{source}: {error}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except InputError as error:
                errors.append(str(error))
        raise InputError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, where) for v in value)
    if origin is typing.Literal:
        if value not in args:
            raise InputError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def with_overrides(cls: type[T], mapping: Mapping, source: str, overrides: Iterable[str] = ()) -> T:
    """`cls` from `mapping` (read from `source`), then `--set` overrides: an error in the mapping names
    `source`, one that only the overrides bring names `--set`."""
    config = from_dict(cls, mapping, source)
    overrides = list(overrides)
    return from_dict(cls, apply_overrides(mapping, overrides), "--set") if overrides else config


def to_dict(obj: Any) -> Any:
    """A frozen dataclass (possibly nested) as plain YAML-friendly data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def jsonable(obj):
    """Plain JSON data: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
