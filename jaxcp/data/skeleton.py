"""Skeleton layouts (joints, edges, parents, body parts) and the hop-distance adjacency built from them.

A `Layout` is a frozen, hashable spec: it can be a Flax module field or a `jit` static argument. The
built-in layouts are `in-motion-29` (AutoCP's default), `in-motion-19` (MovementOutcome) and `coco-17`;
any other layout is read from a YAML file with `load_layout`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from jaxcp.core.errors import InputError

MAX_HOP = 3


@dataclasses.dataclass(frozen=True)
class Layout:
    """A skeleton: V joints, undirected edges, a centre, a parent per joint and body-part groups.

    Attributes:
      name: layout name, stored in datasets and checkpoints so that mismatches are caught.
      joints: joint names in array order (V,).
      edges: undirected joint-index pairs, self-loops excluded.
      center: index of the graph centre joint.
      parents: parent index of every joint (V,), for bone vectors; a root is its own parent.
      parts: (group name, joint indices) pairs; every joint is in exactly one group.
      thorax, pelvis: joint indices whose mean is the thorax / pelvis point used for normalisation.
    """

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: int
    parents: tuple[int, ...]
    parts: tuple[tuple[str, tuple[int, ...]], ...]
    thorax: tuple[int, ...]
    pelvis: tuple[int, ...]

    def __post_init__(self):
        _validate(self)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.parts)

    def index(self, joint: str) -> int:
        """Index of a joint by name."""
        try:
            return self.joints.index(joint)
        except ValueError:
            raise InputError(f"layout {self.name!r}: unknown joint {joint!r}") from None

    def joint_to_part(self) -> np.ndarray:
        """(V,) int32: the index of the body part that holds each joint."""
        out = np.empty(self.num_joints, np.int32)
        for p, (_, members) in enumerate(self.parts):
            out[list(members)] = p
        return out

    def hop_distance(self, max_hop: int = MAX_HOP) -> np.ndarray:
        """(V, V) shortest-path lengths; `np.inf` beyond `max_hop`."""
        return hop_distance(self.num_joints, self.edges, max_hop)

    def adjacency(self, max_hop: int = MAX_HOP) -> np.ndarray:
        """(max_hop + 1, V, V) float32 hop-partitioned, column-normalised adjacency (AutoCP "distance").

        Slice k holds the normalised entries of joint pairs exactly k hops apart. A layer with graph
        distance d uses slices 0..d.
        """
        return distance_adjacency(self.hop_distance(max_hop), max_hop)


def hop_distance(num_joints: int, edges: Sequence[tuple[int, int]], max_hop: int = MAX_HOP) -> np.ndarray:
    """(V, V) hop distance on the undirected graph with self-loops; `np.inf` beyond `max_hop`."""
    a = np.eye(num_joints, dtype=np.int64)
    for i, j in edges:
        a[i, j] = a[j, i] = 1
    hops = np.full((num_joints, num_joints), np.inf)
    reach = [np.linalg.matrix_power(a, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        hops[reach[d]] = d
    return hops


def normalize_columns(adj: np.ndarray) -> np.ndarray:
    """A D^-1 with D the column sums (columns summing to zero stay zero)."""
    deg = adj.sum(axis=0)
    inv = np.where(deg > 0, 1.0 / np.where(deg > 0, deg, 1.0), 0.0)
    return adj * inv[None, :]


def distance_adjacency(hops: np.ndarray, max_hop: int = MAX_HOP) -> np.ndarray:
    """Split the column-normalised `hops <= max_hop` adjacency into one slice per hop distance."""
    normalized = normalize_columns((hops <= max_hop).astype(np.float64))
    slices = [np.where(hops == k, normalized, 0.0) for k in range(max_hop + 1)]
    return np.stack(slices).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# Validation and loading

def _validate(layout: Layout) -> None:
    where = f"layout {layout.name!r}"
    v = len(layout.joints)
    if v == 0:
        raise InputError(f"{where}: no joints")
    if len(set(layout.joints)) != v:
        dup = sorted({j for j in layout.joints if layout.joints.count(j) > 1})
        raise InputError(f"{where}: duplicate joint names {dup}")
    in_range = lambda i: isinstance(i, (int, np.integer)) and 0 <= i < v  # noqa: E731
    for i, j in layout.edges:
        if not (in_range(i) and in_range(j)):
            raise InputError(f"{where}: edge ({i}, {j}) names a joint outside 0..{v - 1}")
    for what, idx in (("center", (layout.center,)), ("thorax", layout.thorax), ("pelvis", layout.pelvis)):
        if not idx or not all(in_range(i) for i in idx):
            raise InputError(f"{where}: {what} must name joints of the layout")
    if len(layout.parents) != v or not all(in_range(p) for p in layout.parents):
        raise InputError(f"{where}: every joint needs a parent that is a joint of the layout")
    _check_parents_are_a_forest(layout, where)
    hops = hop_distance(v, layout.edges, max_hop=v)
    if np.isinf(hops).any():
        i, j = np.argwhere(np.isinf(hops))[0]
        a, b = layout.joints[i], layout.joints[j]
        raise InputError(f"{where}: graph is disconnected ({a!r} cannot reach {b!r})")
    counts = np.zeros(v, np.int64)
    for _, members in layout.parts:
        for i in members:
            if not in_range(i):
                raise InputError(f"{where}: a part names a joint outside 0..{v - 1}")
            counts[i] += 1
    if (counts == 0).any():
        raise InputError(f"{where}: joint {layout.joints[int(np.argmin(counts))]!r} is in no part")
    if (counts > 1).any():
        raise InputError(f"{where}: joint {layout.joints[int(np.argmax(counts))]!r} is in more than one part")


def _check_parents_are_a_forest(layout: Layout, where: str) -> None:
    for start in range(len(layout.joints)):
        seen, joint = set(), start
        while layout.parents[joint] != joint:
            if joint in seen:
                raise InputError(f"{where}: parents form a cycle through {layout.joints[joint]!r}")
            seen.add(joint)
            joint = layout.parents[joint]


# --------------------------------------------------------------------------------------------------------
# Built-in layouts

_IN_MOTION_19_JOINTS = (
    "head_top", "nose", "right_ear", "left_ear", "upper_neck", "right_shoulder", "right_elbow",
    "right_wrist", "thorax", "left_shoulder", "left_elbow", "left_wrist", "pelvis", "right_hip",
    "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
)  # fmt: skip
_IN_MOTION_EXTRA_JOINTS = (
    "right_little_finger", "right_index_finger", "left_little_finger", "left_index_finger",
    "right_heel", "right_little_toe", "right_big_toe", "left_heel", "left_little_toe", "left_big_toe",
)  # fmt: skip
_IN_MOTION_19_EDGES = (
    (0, 1), (2, 1), (3, 1), (1, 4), (9, 8), (10, 9), (11, 10), (5, 8), (6, 5), (7, 6), (4, 8), (12, 8),
    (16, 12), (17, 16), (18, 17), (13, 12), (14, 13), (15, 14),
)  # fmt: skip
_IN_MOTION_EXTRA_EDGES = ((19, 7), (20, 7), (21, 11), (22, 11), (23, 15), (24, 15), (25, 15), (26, 18),
                          (27, 18), (28, 18))  # fmt: skip
_IN_MOTION_19_PARENTS = (1, 4, 1, 1, 8, 8, 5, 6, 8, 8, 9, 10, 8, 12, 13, 14, 12, 16, 17)
_IN_MOTION_EXTRA_PARENTS = (7, 7, 11, 11, 15, 15, 15, 18, 18, 18)

IN_MOTION_29 = Layout(
    name="in-motion-29",
    joints=_IN_MOTION_19_JOINTS + _IN_MOTION_EXTRA_JOINTS,
    edges=_IN_MOTION_19_EDGES + _IN_MOTION_EXTRA_EDGES,
    center=8,
    parents=_IN_MOTION_19_PARENTS + _IN_MOTION_EXTRA_PARENTS,
    parts=(
        ("left_arm", (9, 10, 11, 21, 22)),
        ("right_arm", (5, 6, 7, 19, 20)),
        ("left_leg", (16, 17, 18, 26, 27, 28)),
        ("right_leg", (13, 14, 15, 23, 24, 25)),
        ("torso", (0, 1, 2, 3, 4, 8, 12)),
    ),
    thorax=(8,),
    pelvis=(12,),
)

IN_MOTION_19 = Layout(
    name="in-motion-19",
    joints=_IN_MOTION_19_JOINTS,
    edges=_IN_MOTION_19_EDGES,
    center=8,
    parents=_IN_MOTION_19_PARENTS,
    parts=(
        ("left_arm", (9, 10, 11)),
        ("right_arm", (5, 6, 7)),
        ("left_leg", (16, 17, 18)),
        ("right_leg", (13, 14, 15)),
        ("torso", (0, 1, 2, 3, 4, 8, 12)),
    ),
    thorax=(8,),
    pelvis=(12,),
)

COCO_17 = Layout(
    name="coco-17",
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle",
    ),  # fmt: skip
    edges=(
        (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
        (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    ),  # fmt: skip
    center=0,
    parents=(0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    parts=(
        ("left_arm", (5, 7, 9)),
        ("right_arm", (6, 8, 10)),
        ("left_leg", (11, 13, 15)),
        ("right_leg", (12, 14, 16)),
        ("head", (0, 1, 2, 3, 4)),
    ),
    thorax=(5, 6),
    pelvis=(11, 12),
)

BUILTIN_LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (IN_MOTION_29, IN_MOTION_19, COCO_17)}
DEFAULT_LAYOUT = IN_MOTION_29.name



_YAML_KEYS = {"name", "joints", "edges", "center", "parents", "parts", "thorax", "pelvis"}


def layout_from_dict(spec: Mapping, source: str = "layout") -> Layout:
    """Build a Layout from the YAML mapping of names described in the README."""
    if not isinstance(spec, Mapping):
        raise InputError(f"{source}: a layout must be a mapping with keys {sorted(_YAML_KEYS)}")
    unknown = set(spec) - _YAML_KEYS
    missing = _YAML_KEYS - set(spec)
    if unknown:
        raise InputError(f"{source}: unknown layout keys {sorted(unknown)}")
    if missing:
        raise InputError(f"{source}: missing layout keys {sorted(missing)}")
    joints = spec["joints"]
    if not isinstance(joints, list) or not all(isinstance(j, str) for j in joints):
        raise InputError(f"{source}: 'joints' must be a list of joint names")
    if len(set(joints)) != len(joints):
        raise InputError(f"{source}: 'joints' has duplicate names")
    index = {name: i for i, name in enumerate(joints)}

    def idx(name, key):
        if not isinstance(name, str) or name not in index:
            raise InputError(f"{source}: {key} names unknown joint {name!r}")
        return index[name]

    def idx_list(value, key):
        names = value if isinstance(value, list) else [value]
        return tuple(idx(n, key) for n in names)

    edges = spec["edges"]
    if not isinstance(edges, list) or not all(isinstance(e, list) and len(e) == 2 for e in edges):
        raise InputError(f"{source}: 'edges' must be a list of [joint, joint] pairs")
    parents = spec["parents"]
    if not isinstance(parents, Mapping):
        raise InputError(f"{source}: 'parents' must map each joint to its parent joint")
    for name in parents:
        idx(name, "parents")
    for name in joints:
        if name not in parents:
            raise InputError(f"{source}: joint {name!r} has no parent (a root is its own parent)")
    parts = spec["parts"]
    if not isinstance(parts, Mapping) or not parts:
        raise InputError(f"{source}: 'parts' must map part names to lists of joints")
    try:
        return Layout(
            name=str(spec["name"]),
            joints=tuple(joints),
            edges=tuple((idx(a, "edges"), idx(b, "edges")) for a, b in edges if a != b),
            center=idx(spec["center"], "center"),
            parents=tuple(idx(parents[name], "parents") for name in joints),
            parts=tuple((str(p), idx_list(members, f"part {p!r}")) for p, members in parts.items()),
            thorax=idx_list(spec["thorax"], "thorax"),
            pelvis=idx_list(spec["pelvis"], "pelvis"),
        )
    except InputError as error:  # the Layout's own checks name the layout, not the file
        message = str(error)
        raise InputError(message if message.startswith(f"{source}:") else f"{source}: {message}") from None


def load_layout(name_or_path: str | Path | Layout | None = None) -> Layout:
    """A built-in layout by name, or a layout read from a YAML file. None gives the default."""
    if isinstance(name_or_path, Layout):
        return name_or_path
    key = DEFAULT_LAYOUT if name_or_path is None else str(name_or_path)
    if key in BUILTIN_LAYOUTS:
        return BUILTIN_LAYOUTS[key]
    path = Path(key)
    if not path.is_file():
        raise InputError(f"{key}: not a built-in layout ({', '.join(BUILTIN_LAYOUTS)}) and not a file")
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError(f"{path}: cannot read layout: {type(error).__name__}") from None
    return layout_from_dict(spec, source=str(path))


def layout_to_dict(layout: Layout) -> dict:
    """The YAML mapping of names for a layout (inverse of `layout_from_dict`)."""
    names = layout.joints
    return {
        "name": layout.name,
        "joints": list(names),
        "edges": [[names[i], names[j]] for i, j in layout.edges],
        "center": names[layout.center],
        "parents": {names[i]: names[p] for i, p in enumerate(layout.parents)},
        "parts": {p: [names[i] for i in members] for p, members in layout.parts},
        "thorax": [names[i] for i in layout.thorax],
        "pelvis": [names[i] for i in layout.pelvis],
    }
