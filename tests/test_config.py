"""Config helpers: YAML reading, `--set` overrides, typed frozen dataclasses from mappings, round trips."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
import yaml

from jaxcp.core.config import apply_overrides, dump_yaml, from_dict, load_yaml, parse_override, to_dict
from jaxcp.core.errors import InputError


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    steps: int = 3


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "run"
    flag: bool = False
    mode: Literal["fast", "slow"] = "fast"
    sizes: tuple[int, ...] = (1, 2)
    limit: int | None = None
    inner: Inner = dataclasses.field(default_factory=Inner)


# --------------------------------------------------------------------------------------------------------
# load_yaml

def test_load_yaml_reads_mappings_and_empty_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: {c: [1, 2]}\n")
    assert load_yaml(path) == {"a": 1, "b": {"c": [1, 2]}}
    path.write_text("")
    assert load_yaml(path) == {}


@pytest.mark.parametrize(
    "content, message",
    [
        ("a: [1, 2\n", "malformed YAML at line"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("!!python/object:os.system {}\n", "YAML tags such as '!!python/object' are not allowed"),
    ],
)
def test_load_yaml_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        load_yaml(path)
    assert str(info.value).startswith(str(path))


def test_load_yaml_missing_and_unreadable(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(InputError, match="cannot read file"):
        load_yaml(binary)
    with pytest.raises(InputError, match="cannot read file"):
        load_yaml(tmp_path)  # a directory


# --------------------------------------------------------------------------------------------------------
# overrides

@pytest.mark.parametrize(
    "text, path, value",
    [
        ("a=1", ["a"], 1),
        ("a.b=0.25", ["a", "b"], 0.25),
        ("a.b=true", ["a", "b"], True),
        ("name=hello", ["name"], "hello"),
        ("sizes=[3, 4]", ["sizes"], [3, 4]),
        ("x=", ["x"], None),
        ("x=a: [b", ["x"], "a: [b"),  # not valid YAML: kept as the text
        (" key = 2", ["key"], 2),
    ],
)
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["novalue", "=3", " =3"])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(InputError, match="expected key=value"):
        parse_override(text)


def test_apply_overrides_creates_sections_and_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    out = apply_overrides(base, ["a.b=10", "e.f.g=x", "d=4"])
    assert out == {"a": {"b": 10, "c": 2}, "d": 4, "e": {"f": {"g": "x"}}}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}


def test_apply_overrides_refuses_to_descend_into_a_value():
    with pytest.raises(InputError, match="'d' is not a section"):
        apply_overrides({"d": 3}, ["d.x=1"])


# --------------------------------------------------------------------------------------------------------
# from_dict / to_dict

def test_from_dict_defaults_and_nested_values():
    assert from_dict(Outer, None) == Outer()
    cfg = from_dict(Outer, {"name": "x", "flag": True, "mode": "slow", "sizes": [5], "limit": 7,
                            "inner": {"rate": 2, "steps": 9}})
    assert cfg == Outer("x", True, "slow", (5,), 7, Inner(2.0, 9))
    assert isinstance(cfg.inner.rate, float) and isinstance(cfg.sizes, tuple)
    assert from_dict(Outer, {"limit": None}).limit is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"nmae": "x"}, "cfg: unknown key 'nmae'"),
        ({"inner": {"rte": 1.0}}, "cfg: inner: unknown key 'rte'"),
        ({"name": 3}, "cfg: name: expected a string"),
        ({"flag": "yes"}, "cfg: flag: expected true or false"),
        ({"mode": "medium"}, "cfg: mode: 'medium' is not one of \\['fast', 'slow'\\]"),
        ({"sizes": 3}, "cfg: sizes: expected a list"),
        ({"sizes": [1, "two"]}, "cfg: sizes: expected an integer"),
        ({"limit": 2.5}, "cfg: limit: expected an integer"),
        ({"limit": True}, "cfg: limit: expected an integer"),
        ({"inner": {"rate": "fast"}}, "cfg: inner: rate: expected a number"),
        ({"inner": {"steps": 1.0}}, "cfg: inner: steps: expected an integer"),
        ({"inner": 5}, "cfg: inner: expected a mapping for Inner"),
    ],
)
def test_from_dict_rejects_with_the_key_named(data, message):
    with pytest.raises(InputError, match=message):
        from_dict(Outer, data, "cfg")


def test_from_dict_rejects_a_non_mapping():
    with pytest.raises(InputError, match="expected a mapping for Outer"):
        from_dict(Outer, [1, 2], "cfg")


def test_to_dict_and_dump_yaml_round_trip():
    cfg = Outer("x", True, "slow", (5, 6), None, Inner(0.1, 4))
    data = to_dict(cfg)
    assert data == {"name": "x", "flag": True, "mode": "slow", "sizes": [5, 6], "limit": None,
                    "inner": {"rate": 0.1, "steps": 4}}
    assert from_dict(Outer, yaml.safe_load(dump_yaml(cfg))) == cfg
    assert list(yaml.safe_load(dump_yaml(cfg))) == ["name", "flag", "mode", "sizes", "limit", "inner"]


def test_file_then_overrides_pipeline(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: base\ninner:\n  steps: 5\n")
    cfg = from_dict(Outer, apply_overrides(load_yaml(path), ["inner.rate=0.75", "sizes=[9]"]), str(path))
    assert cfg == Outer(name="base", sizes=(9,), inner=Inner(rate=0.75, steps=5))
