"""Architecture files: one candidate (`Arch`) and how to train it (`HParams`) as YAML.

    # jaxcp architecture file
    arch:
      init_channels: 64
      ...
    hparams:
      optimizer: sgd
      ...

`read_arch_file` checks every key and value by the fields' own rules; whether the candidate lies in a
search space is `jaxcp.nas.space.load_arch_file`'s business.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from jaxcp.core.config import load_yaml, to_dict
from jaxcp.core.fields import check_sections, section_values
from jaxcp.model.arch import ARCH_DECISIONS, ARCH_RULES, Arch
from jaxcp.training.hparams import HPARAM_DECISIONS, HPARAM_RULES, HParams

SECTIONS = ("arch", "hparams")


def read_arch_file(path: str | Path) -> tuple[Arch, HParams]:
    """Read an arch file; unknown keys, missing keys and bad values name the file and key."""
    path = Path(path)
    data = load_yaml(path)
    check_sections(data, path, required=SECTIONS)
    arch_values = section_values(data["arch"], ARCH_RULES, ARCH_DECISIONS, f"{path}: arch", ("variant",))
    hparam_values = section_values(data["hparams"], HPARAM_RULES, HPARAM_DECISIONS, f"{path}: hparams")
    return Arch(**arch_values), HParams(**hparam_values)


def arch_file_text(arch: Arch, hparams: HParams) -> str:
    """The YAML text of an arch file holding `arch` and `hparams` (read back by `read_arch_file`)."""
    header = "# jaxcp architecture file: one candidate of the search space (see configs/space/autocp.yaml)\n"
    body = yaml.safe_dump({"arch": to_dict(arch), "hparams": to_dict(hparams)}, sort_keys=False)
    return header + body
