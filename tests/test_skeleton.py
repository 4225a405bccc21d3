"""Skeleton layouts: hop distances and adjacency against hand computations, built-ins, YAML, errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from jaxcp.core.errors import InputError
from jaxcp.data.skeleton import (
    BUILTIN_LAYOUTS,
    DEFAULT_LAYOUT,
    IN_MOTION_19,
    IN_MOTION_29,
    Layout,
    hop_distance,
    layout_to_dict,
    load_layout,
)


def chain(num_joints: int, name: str = "chain") -> Layout:
    return Layout(
        name=name,
        joints=tuple(f"j{i}" for i in range(num_joints)),
        edges=tuple((i, i + 1) for i in range(num_joints - 1)),
        center=0,
        parents=(0, *range(num_joints - 1)),
        parts=(("all", tuple(range(num_joints))),),
        thorax=(0,),
        pelvis=(num_joints - 1,),
    )


STAR = Layout(
    name="star",
    joints=("hub", "a", "b", "c"),
    edges=((0, 1), (0, 2), (0, 3)),
    center=0,
    parents=(0, 0, 0, 0),
    parts=(("hub", (0,)), ("leaves", (1, 2, 3))),
    thorax=(0,),
    pelvis=(1, 2),
)


# --------------------------------------------------------------------------------------------------------
# Adjacency on small graphs computed by hand

def test_three_joint_chain_adjacency():
    # hops 0-1 = 1, 0-2 = 2; every pair within 3 hops, so every column has 3 entries: 1/3 each.
    a = chain(3).adjacency()
    third = 1 / 3
    expected = np.zeros((4, 3, 3))
    expected[0] = np.eye(3) * third
    expected[1][[0, 1, 1, 2], [1, 0, 2, 1]] = third
    expected[2][[0, 2], [2, 0]] = third
    assert a.shape == (4, 3, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a, expected, rtol=1e-6)


def test_four_joint_star_adjacency():
    # hub-leaf 1 hop, leaf-leaf 2 hops (through the hub): all 4 joints in every column, 1/4 each.
    a = STAR.adjacency()
    q = 0.25
    expected = np.zeros((4, 4, 4))
    expected[0] = np.eye(4) * q
    for leaf in (1, 2, 3):
        expected[1][0, leaf] = expected[1][leaf, 0] = q
        for other in (1, 2, 3):
            if other != leaf:
                expected[2][leaf, other] = q
    np.testing.assert_allclose(a, expected, rtol=1e-6)


def test_five_joint_chain_normalises_columns_and_drops_four_hops():
    # j0 - j1 - j2 - j3 - j4: j0 and j4 are 4 hops apart (beyond max_hop 3).
    # Column degrees (joints within 3 hops): j0: 4, j1: 5, j2: 5, j3: 5, j4: 4. A[k][v, w] = 1/deg(w).
    a = chain(5).adjacency()
    expected_1 = np.array([
        [0, 1 / 5, 0, 0, 0],
        [1 / 4, 0, 1 / 5, 0, 0],
        [0, 1 / 5, 0, 1 / 5, 0],
        [0, 0, 1 / 5, 0, 1 / 4],
        [0, 0, 0, 1 / 5, 0],
    ])
    expected_3 = np.zeros((5, 5))
    expected_3[0, 3], expected_3[3, 0] = 1 / 5, 1 / 4
    expected_3[1, 4], expected_3[4, 1] = 1 / 4, 1 / 5
    np.testing.assert_allclose(a[0], np.diag([1 / 4, 1 / 5, 1 / 5, 1 / 5, 1 / 4]), rtol=1e-6)
    np.testing.assert_allclose(a[1], expected_1, rtol=1e-6)
    np.testing.assert_allclose(a[3], expected_3, rtol=1e-6)
    assert a[:, 0, 4].sum() == 0 and a[:, 4, 0].sum() == 0


def test_hop_distance_by_hand_and_cutoff():
    hops = hop_distance(5, [(0, 1), (1, 2), (2, 3), (3, 4)], max_hop=3)
    assert hops[0, 3] == 3 and hops[1, 4] == 3 and hops[2, 2] == 0
    assert np.isinf(hops[0, 4]) and np.isinf(hops[4, 0])
    np.testing.assert_array_equal(hop_distance(3, [(0, 1), (1, 2)], max_hop=1)[0], [0, 1, np.inf])


def test_adjacency_max_hop_changes_partitions_and_degrees():
    # max_hop 1 on j0 - j1 - j2: column j0 holds {j0, j1} (1/2), column j1 holds {j0, j1, j2} (1/3).
    a = chain(3).adjacency(max_hop=1)
    assert a.shape == (2, 3, 3)
    np.testing.assert_allclose(a[0], np.diag([1 / 2, 1 / 3, 1 / 2]), rtol=1e-6)
    np.testing.assert_allclose(a[1], [[0, 1 / 3, 0], [1 / 2, 0, 1 / 2], [0, 1 / 3, 0]], rtol=1e-6)


# --------------------------------------------------------------------------------------------------------
# In-Motion 29 against the reference (autocp-algorithm.md section 2.3)

IN_MOTION_29_DEGREES = [6, 9, 6, 6, 13, 13, 9, 6, 17, 13, 9, 6, 14, 13, 9, 7, 13, 9, 7,
                        5, 5, 5, 5, 6, 6, 6, 6, 6, 6]


def test_in_motion_29_degrees_and_partition_sizes():
    a = IN_MOTION_29.adjacency()
    assert a.shape == (4, 29, 29)
    hops = IN_MOTION_29.hop_distance()
    np.testing.assert_array_equal((hops <= 3).sum(axis=0), IN_MOTION_29_DEGREES)
    np.testing.assert_array_equal([np.count_nonzero(a[k]) for k in range(4)], [29, 56, 84, 72])
    np.testing.assert_allclose(a.sum(axis=(0, 1)), np.ones(29), rtol=1e-6)  # each column sums to 1
    degrees = np.array(IN_MOTION_29_DEGREES, np.float64)
    np.testing.assert_allclose(np.diag(a[0]), 1 / degrees, rtol=1e-6)


def test_in_motion_29_facts():
    lay = IN_MOTION_29
    assert lay.num_joints == 29 and len(lay.edges) == 28 and lay.center == 8
    assert lay.thorax == (8,) and lay.pelvis == (12,)
    assert lay.parents[8] == 8
    assert lay.part_names == ("left_arm", "right_arm", "left_leg", "right_leg", "torso")
    expected_parts = [4, 4, 4, 4, 4, 1, 1, 1, 4, 0, 0, 0, 4, 3, 3, 3, 2, 2, 2, 1, 1, 0, 0, 3, 3, 3, 2, 2, 2]
    np.testing.assert_array_equal(lay.joint_to_part(), expected_parts)
    assert lay.joints[:19] == IN_MOTION_19.joints
    assert lay.index("pelvis") == 12
    with pytest.raises(InputError, match="unknown joint 'tail'"):
        lay.index("tail")


@pytest.mark.parametrize("name", sorted(BUILTIN_LAYOUTS))
def test_builtin_layouts_are_hashable_and_round_trip_through_yaml(name, tmp_path):
    lay = BUILTIN_LAYOUTS[name]
    assert hash(lay) == hash(load_layout(name)) and load_layout(name) is lay
    path = tmp_path / "layout.yaml"
    path.write_text(yaml.safe_dump(layout_to_dict(lay), sort_keys=False))  # part order is meaningful
    assert load_layout(path) == lay
    assert load_layout(str(path)) == lay


def test_default_layout():
    assert load_layout() is BUILTIN_LAYOUTS[DEFAULT_LAYOUT] and DEFAULT_LAYOUT == "in-motion-29"
    assert load_layout(STAR) is STAR


# --------------------------------------------------------------------------------------------------------
# YAML layouts

STAR_YAML = """
name: my-star
joints: [hub, a, b, c]
edges: [[hub, a], [hub, b], [c, hub], [a, a]]
center: hub
parents: {hub: hub, a: hub, b: hub, c: hub}
parts: {core: [hub], limbs: [a, b, c]}
thorax: hub
pelvis: [a, b]
"""


def test_yaml_layout_loads_names_as_indices(tmp_path):
    path = tmp_path / "star.yaml"
    path.write_text(STAR_YAML)
    lay = load_layout(path)
    assert lay.name == "my-star"
    assert lay.joints == ("hub", "a", "b", "c")
    assert lay.edges == ((0, 1), (0, 2), (3, 0))  # the self-loop [a, a] is dropped
    assert lay.center == 0 and lay.parents == (0, 0, 0, 0)
    assert lay.parts == (("core", (0,)), ("limbs", (1, 2, 3)))
    assert lay.thorax == (0,) and lay.pelvis == (1, 2)
    np.testing.assert_allclose(lay.adjacency(), STAR.adjacency())


def _spec() -> dict:
    return yaml.safe_load(STAR_YAML)


def _edit(**changes) -> dict:
    spec = _spec()
    for key, value in changes.items():
        if value is None:
            del spec[key]
        else:
            spec[key] = value
    return spec


@pytest.mark.parametrize(
    "spec, message",
    [
        ([1, 2], "must be a mapping"),
        (_edit(color="red"), "unknown layout keys \\['color'\\]"),
        (_edit(center=None), "missing layout keys \\['center'\\]"),
        (_edit(joints="hub"), "'joints' must be a list"),
        (_edit(joints=["hub", "a", "a", "c"]), "duplicate names"),
        (_edit(edges=[["hub", "tail"]]), "edges names unknown joint 'tail'"),
        (_edit(edges=[["hub", "a", "b"]]), "'edges' must be a list of \\[joint, joint\\] pairs"),
        (_edit(edges=[["hub", "a"], ["hub", "b"]]), "disconnected \\('hub' cannot reach 'c'\\)"),
        (_edit(center="tail"), "center names unknown joint 'tail'"),
        (_edit(parents=["hub"]), "'parents' must map"),
        (_edit(parents={"hub": "hub", "a": "hub", "b": "hub"}), "joint 'c' has no parent"),
        (_edit(parents={"hub": "hub", "a": "hub", "b": "hub", "c": "hub", "d": "hub"}), "unknown joint 'd'"),
        (_edit(parents={"hub": "a", "a": "hub", "b": "hub", "c": "hub"}), "parents form a cycle"),
        (_edit(parts={"core": ["hub"], "limbs": ["a", "b"]}), "joint 'c' is in no part"),
        (_edit(parts={"core": ["hub", "a"], "limbs": ["a", "b", "c"]}), "joint 'a' is in more than one part"),
        (_edit(parts={"core": ["hub", "tail"]}), "part 'core' names unknown joint 'tail'"),
        (_edit(parts={}), "'parts' must map part names"),
        (_edit(thorax="tail"), "thorax names unknown joint 'tail'"),
        (_edit(pelvis=["a", "tail"]), "pelvis names unknown joint 'tail'"),
    ],
)
def test_yaml_layout_inconsistencies(tmp_path, spec, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(InputError, match=message) as info:
        load_layout(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_layout_file_problems(tmp_path):
    with pytest.raises(InputError, match="not a built-in layout .* and not a file"):
        load_layout(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="not a built-in layout"):
        load_layout("in-motion-30")
    with pytest.raises(InputError, match="not a built-in layout"):
        load_layout(tmp_path)  # a directory
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\njoints: {")
    with pytest.raises(InputError, match=f"{broken}: cannot read layout"):
        load_layout(broken)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(InputError, match=f"{binary}: cannot read layout"):
        load_layout(binary)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(InputError, match="must be a mapping"):
        load_layout(empty)


# --------------------------------------------------------------------------------------------------------
# Layout invariants checked on construction

def _star(**changes) -> dict:
    fields = dict(name="s", joints=STAR.joints, edges=STAR.edges, center=0, parents=STAR.parents,
                  parts=STAR.parts, thorax=(0,), pelvis=(1,))
    fields.update(changes)
    return fields


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(joints=()), "no joints"),
        (dict(joints=("hub", "a", "a", "c")), "duplicate joint names \\['a'\\]"),
        (dict(edges=((0, 4),)), "edge \\(0, 4\\) names a joint outside 0..3"),
        (dict(center=7), "center must name joints"),
        (dict(thorax=()), "thorax must name joints"),
        (dict(pelvis=(-1,)), "pelvis must name joints"),
        (dict(parents=(0, 0, 0)), "every joint needs a parent"),
        (dict(parents=(1, 2, 0, 0)), "parents form a cycle"),
        (dict(edges=((0, 1), (0, 2))), "disconnected"),
        (dict(parts=(("all", (0, 1, 2)),)), "joint 'c' is in no part"),
        (dict(parts=(("all", (0, 1, 2, 3)), ("again", (3,)))), "joint 'c' is in more than one part"),
        (dict(parts=(("all", (0, 1, 2, 3, 9)),)), "a part names a joint outside"),
    ],
)
def test_layout_validation(changes, message):
    with pytest.raises(InputError, match=message):
        Layout(**_star(**changes))
