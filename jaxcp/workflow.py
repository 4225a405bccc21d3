"""An experiment: one dataset's train and validation splits on device, and training of students on them.

The search and the final training share this: data are loaded, windowed and featurised once, then any
number of students (of any architecture) are trained against them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from jaxcp import checkpoint, train
from jaxcp.checkpoint import DataSettings
from jaxcp.config import from_dict
from jaxcp.data.dataset import MANIFEST, Dataset, load_dataset, read_manifest
from jaxcp.data.preprocess import PreprocessConfig
from jaxcp.errors import InputError
from jaxcp.skeleton import Layout, load_layout
from jaxcp.space import Arch, HParams

SYNTHETIC_ROOT = Path("data") / "synthetic"


@dataclasses.dataclass
class Experiment:
    layout: Layout
    train_set: Dataset
    val_set: Dataset
    student: train.TrainConfig
    long: train.TrainConfig
    data: DataSettings = DataSettings()  # how the data were prepared (stored with saved models)

    def __post_init__(self):
        self.train_data = train.make_train_data(self.train_set, self.student)
        self.val_data = train.make_eval_data(self.val_set, self.layout, self.student)

    def train(
        self,
        arch: Arch,
        hparams: Sequence[HParams],
        seeds: Sequence[int],
        *,
        long: bool = False,
        checkpoint_dir: Path | None = None,
        on_epoch: Callable | None = None,
    ) -> list[train.StudentResult]:
        """Train students of one architecture; with `checkpoint_dir`, save the first one's best model."""
        config = self.long if long else self.student
        results = train.train_students(
            arch, hparams, seeds, self.train_data, self.val_data, self.layout, config,
            keep_state=checkpoint_dir is not None, on_epoch=on_epoch,
        )  # fmt: skip
        if checkpoint_dir is not None and results[0].state is not None:
            state = results[0].state
            checkpoint.save_model(
                checkpoint_dir, params=state.params, batch_stats=state.batch_stats, arch=arch,
                hparams=hparams[0], layout=self.layout, features=config.features, window=config.window,
                hop=config.hop, metrics=results[0].metrics, data=self.data,
                extra={"best_epoch": results[0].best_epoch},
            )  # fmt: skip
        return results


def data_settings(data_dir: str | Path) -> DataSettings:
    """How a processed dataset was prepared (from its manifest; unknown preprocessing for AutoCP npy data)."""
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).is_file():
        return DataSettings(source=str(data_dir.resolve()))
    manifest = read_manifest(data_dir)
    settings = manifest.settings
    where = f"{data_dir / MANIFEST} settings"
    preprocess = from_dict(PreprocessConfig, settings.get("preprocess", {}), f"{where}: preprocess")
    threshold = settings.get("confidence_threshold", DataSettings.confidence_threshold)
    return DataSettings(preprocess=preprocess, confidence_threshold=float(threshold), fps=float(manifest.fps),
                        source=str(data_dir.resolve()))


def student_configs(settings, features=None) -> tuple[train.TrainConfig, train.TrainConfig]:
    """TrainConfigs for search students and for the long (argmax / final) schedule (features: those of
    `settings` unless given)."""
    if features is None:
        features = getattr(settings, "features", None)
    base = train.TrainConfig(
        epochs=settings.epochs, eval_every=settings.eval_every, early_stop=settings.early_stop,
        window=settings.window, hop=settings.hop, augment=settings.augment,
        parts_positive=settings.parts_positive, parts_negative=settings.parts_negative,
        **({"features": features} if features is not None else {}),
    )  # fmt: skip
    long = dataclasses.replace(
        base, epochs=max(settings.argmax_epochs, 1), eval_last=settings.argmax_eval_last, early_stop=False
    )
    return base, long


def ensure_synthetic(settings, seed: int, layout: Layout, log: Callable = print) -> Path:
    """A processed synthetic cohort for these settings, generated on first use and reused afterwards."""
    from jaxcp import synth
    from jaxcp.prepare import prepare_dataset

    values = dataclasses.asdict(settings)
    if values["difficulty"] is None:  # the generator's default, in the key: a new default is a new cohort
        values["difficulty"] = synth.DEFAULT_DIFFICULTY
    key = json.dumps({**values, "seed": seed, "layout": layout.name}, sort_keys=True)
    root = SYNTHETIC_ROOT / hashlib.sha1(key.encode()).hexdigest()[:10]
    processed = root / "processed"
    if (processed / "manifest.json").is_file():
        return processed
    log(f"generating a synthetic cohort of {settings.infants} infants in {root}")
    synth.generate_cohort(
        root / "raw", layout=layout, infants=settings.infants, minutes=settings.minutes,
        cp_fraction=settings.cp_fraction, difficulty=values["difficulty"], seed=seed,
    )  # fmt: skip
    prepare_dataset(root / "raw", processed, layout=layout, seed=seed)
    return processed


def load_experiment(config, log: Callable = print) -> Experiment:
    """Load (or generate) the data of a SearchConfig and put it on device."""
    layout = load_layout(config.layout)
    data_dir = Path(config.data) if config.data else ensure_synthetic(config.synthetic, config.seed, layout, log)
    if not data_dir.exists():
        raise InputError(f"{data_dir}: data folder not found")
    train_set = load_dataset(data_dir, config.train_split)
    val_set = load_dataset(data_dir, config.val_split)
    if train_set.layout_name != layout.name:
        raise InputError(f"{data_dir}: data use layout {train_set.layout_name!r}, the config asks for {layout.name!r}")
    student, long = student_configs(config.student)
    return Experiment(layout, train_set, val_set, student, long, data_settings(data_dir))
