"""The search run's configuration: frozen dataclasses read from `configs/search/*.yaml`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxcp.config import apply_overrides, from_dict, load_yaml
from jaxcp.errors import InputError
from jaxcp.features import FeatureConfig
from jaxcp.runtime import DEFAULT_SEED

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """The cohort generated when no --data is given."""

    infants: int = 120
    minutes: float = 1.0
    cp_fraction: float = 0.25
    difficulty: float | None = None  # None: the synthetic generator's default


@dataclasses.dataclass(frozen=True)
class ControllerSettings:
    """None keeps the controller's default (lr 0.05, moving-average baseline; see the README)."""

    lr: float | None = None
    baseline: str | None = None  # "none" | "moving_average"
    baseline_decay: float | None = None
    entropy_weight: float | None = None


@dataclasses.dataclass(frozen=True)
class ReplaySettings:
    enabled: bool = True
    threshold: float = 0.9
    capacity: int = 200
    batch: int = 10


@dataclasses.dataclass(frozen=True)
class StudentSettings:
    """How students (and the argmax candidates) are trained."""

    epochs: int = 50
    eval_every: int = 5
    early_stop: bool = True
    seeds: int = 1  # seeds per student (vmapped); reward = mean best AUC
    window: int = 150
    hop: int = 75
    augment: bool = True
    parts_positive: int = 30
    parts_negative: int = 5
    argmax_epochs: int = 300  # 0 disables training the argmax candidate
    argmax_eval_last: int = 15
    features: FeatureConfig = FeatureConfig()  # input streams (default all four, J V B A) and their settings


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    seed: int = DEFAULT_SEED
    space: str = "autocp"  # a name under configs/space/ or a YAML path
    layout: str = "in-motion-29"
    data: str | None = None  # processed dataset folder; None: synthetic cohort
    train_split: str = "train"
    val_split: str = "val"
    iterations: int = 15  # controller updates
    first_students: int = 20
    students: int = 30
    target_auc: float | None = None  # stop once an argmax candidate reaches this validation AUC
    synthetic: SyntheticConfig = SyntheticConfig()
    controller: ControllerSettings = ControllerSettings()
    replay: ReplaySettings = ReplaySettings()
    student: StudentSettings = StudentSettings()

    def __post_init__(self):
        positive = {
            "iterations": self.iterations,
            "first_students": self.first_students,
            "students": self.students,
            "student.epochs": self.student.epochs,
            "student.seeds": self.student.seeds,
            "student.eval_every": self.student.eval_every,
        }
        for key, value in positive.items():
            if value < 1:
                raise InputError(f"search config: {key} must be at least 1, got {value}")


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


def load_search_config(name_or_path: str = "quick", overrides: list[str] = ()) -> SearchConfig:
    path = resolve_config_path(name_or_path, "search")
    data = apply_overrides(load_yaml(path), overrides)
    return from_dict(SearchConfig, data, source=str(path))
