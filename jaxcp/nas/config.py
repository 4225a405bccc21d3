"""The search run's configuration: frozen dataclasses read from `configs/search/*.yaml`.

One schema per concern: the students' settings are a training config (`TrainConfig`) plus the few that only
the search has; the controller's settings are the controller's own `ControllerConfig`; the replay memory's
its `ReplayConfig`; the synthetic cohort's the generator's `SyntheticConfig`.
"""

from __future__ import annotations

import dataclasses

from jaxcp.core.config import load_yaml, resolve_config_path, with_overrides
from jaxcp.core.errors import InputError
from jaxcp.core.runtime import DEFAULT_SEED
from jaxcp.data.synth import SyntheticConfig
from jaxcp.nas.controller import ControllerConfig
from jaxcp.nas.replay import ReplayConfig
from jaxcp.training.students import TrainConfig


@dataclasses.dataclass(frozen=True)
class StudentSettings(TrainConfig):
    """How students are trained (every `TrainConfig` key), and the search's own additions:

    seeds: seeds per student, trained together (vmapped); the reward is their mean best validation AUC.
    argmax_epochs: the long schedule of each iteration's argmax candidate (0 disables training it).
    argmax_eval_last: validate every epoch in the candidate's last `argmax_eval_last` epochs.
    folds: K >= 3 makes a student's reward its mean inner cross-validation AUC over K folds of the train and
      validation infants (folds vmapped with its seeds; `jaxcp.training.experiment`); 0 (default) = off.
    """

    seeds: int = 1
    argmax_epochs: int = 300
    argmax_eval_last: int = 15
    folds: int = 0

    def student_config(self) -> TrainConfig:
        """The students' training config (these settings without the search's additions)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        return TrainConfig(**fields)

    def argmax_config(self) -> TrainConfig:
        """The argmax candidates' long schedule: no early stop, validation every epoch at the end."""
        return dataclasses.replace(self.student_config(), epochs=max(self.argmax_epochs, 1),
                                   eval_last=self.argmax_eval_last, early_stop=False)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    seed: int = DEFAULT_SEED
    space: str = "autocp"  # a name under configs/space/ or a YAML path
    layout: str | None = None  # None: the data's own (its manifest); the synthetic cohort: in-motion-29
    data: str | None = None  # processed dataset folder; None: synthetic cohort
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"  # held-out infants for the best candidate's result; None or "": none
    iterations: int = 15  # controller updates
    first_students: int = 20
    students: int = 30
    target_auc: float | None = None  # stop once an argmax candidate reaches this validation AUC
    synthetic: SyntheticConfig = SyntheticConfig()
    controller: ControllerConfig = ControllerConfig()
    replay: ReplayConfig = ReplayConfig()
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
        if self.test_split and self.test_split in (self.train_split, self.val_split):
            raise InputError(f"search config: test_split {self.test_split!r} must be held out: not the train "
                             f"or validation split")
        if self.student.folds != 0 and self.student.folds < 3:
            raise InputError(f"search config: student.folds must be 0 (off) or at least 3, got {self.student.folds}")

    @property
    def total_students(self) -> int:
        return self.first_students + self.students * (self.iterations - 1)


def load_search_config(name_or_path: str = "quick", overrides: list[str] = ()) -> SearchConfig:
    path = resolve_config_path(name_or_path, "search")
    return with_overrides(SearchConfig, load_yaml(path), str(path), overrides)
