"""Architecture files: one candidate (`Arch`), how to train it (`HParams`) and the input it was found with.

    # jaxcp architecture file
    arch:
      init_channels: 64
      ...
    hparams:
      optimizer: sgd
      ...
    features:            # optional: the input streams and feature settings (`FeatureConfig` fields)
      streams: V
      ...
    window: 90           # optional: window and hop (frames) of the input the candidate was found with
    hop: 45

`features`, `window` and `hop` are training settings with the same names as in `TrainConfig`
(`--set features.streams=VA`, `--set window=150` override them); a file without them leaves the training
defaults. `parse_arch_file` checks every key and value by the fields' own rules; whether the candidate lies
in a search space is `jaxcp.nas.space`'s business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import yaml

from jaxcp.core.config import from_dict, load_yaml, to_dict
from jaxcp.core.errors import InputError
from jaxcp.core.fields import check_sections, section_values
from jaxcp.data.features import FeatureConfig
from jaxcp.model.arch import ARCH_DECISIONS, ARCH_RULES, Arch
from jaxcp.training.hparams import HPARAM_DECISIONS, HPARAM_RULES, HParams

SECTIONS = ("arch", "hparams")
INPUT_KEYS = ("features", "window", "hop")
MIN_INPUT = {"window": 3, "hop": 1}  # the smallest usable value of each input integer


@dataclasses.dataclass(frozen=True)
class ArchFile:
    """What an arch file holds; `features`, `window`, `hop` are None where the file does not give them."""

    arch: Arch
    hparams: HParams
    features: FeatureConfig | None = None
    window: int | None = None
    hop: int | None = None

    def input_settings(self) -> dict:
        """The input settings the file gives, as `TrainConfig` keys ({} for a file without them)."""
        values = {"features": self.features, "window": self.window, "hop": self.hop}
        return {key: to_dict(value) for key, value in values.items() if value is not None}


def parse_arch_file(path: str | Path) -> ArchFile:
    """Read an arch file; unknown keys, missing keys and bad values name the file and key."""
    path = Path(path)
    data = load_yaml(path)
    inputs = {key: data.pop(key) for key in INPUT_KEYS if key in data}
    check_sections(data, path, required=SECTIONS)
    arch_values = section_values(data["arch"], ARCH_RULES, ARCH_DECISIONS, f"{path}: arch", ("variant",))
    hparam_values = section_values(data["hparams"], HPARAM_RULES, HPARAM_DECISIONS, f"{path}: hparams")
    return ArchFile(Arch(**arch_values), HParams(**hparam_values), **_input_values(inputs, path))


def _input_values(inputs: Mapping, path: Path) -> dict:
    """The checked `features` (a FeatureConfig), `window` and `hop` of a file's input settings."""
    out = {}
    for key in ("window", "hop"):
        if key in inputs:
            value = inputs[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < MIN_INPUT[key]:
                raise InputError(f"{path}: {key} must be an integer >= {MIN_INPUT[key]} (frames), got {value!r}")
            out[key] = value
    if "features" in inputs:
        if not isinstance(inputs["features"], Mapping):
            raise InputError(f"{path}: features must be a mapping of feature settings "
                             f"({', '.join(f.name for f in dataclasses.fields(FeatureConfig))})")  # fmt: skip
        try:
            out["features"] = from_dict(FeatureConfig, inputs["features"], "features")
        except InputError as error:
            raise InputError(f"{path}: {error}") from None
    return out


def read_arch_file(path: str | Path) -> tuple[Arch, HParams]:
    """The candidate of an arch file (`parse_arch_file` without the input settings)."""
    spec = parse_arch_file(path)
    return spec.arch, spec.hparams


def arch_file_text(arch: Arch, hparams: HParams, features: FeatureConfig | None = None, window: int | None = None,
                   hop: int | None = None) -> str:
    """The YAML text of an arch file holding `arch`, `hparams` and, when given, the input settings it was
    found with (read back by `parse_arch_file`)."""
    header = "# jaxcp architecture file: one candidate of the search space (see configs/space/autocp.yaml)\n"
    body = yaml.safe_dump({"arch": to_dict(arch), "hparams": to_dict(hparams)}, sort_keys=False)
    inputs = ArchFile(arch, hparams, features, window, hop).input_settings()
    if inputs:
        body += ("# the input it was found with (jaxcp train uses these; --set features.<key>=, --set window= "
                 "and --set hop= override them)\n" + yaml.safe_dump(inputs, sort_keys=False))
    return header + body
