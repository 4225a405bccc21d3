"""`jaxcp <command> [args]`: the same as `python -m jaxcp.<command> [args]`."""

from __future__ import annotations

import importlib
import os
import sys

from jaxcp import __version__

COMMANDS = {
    "prepare": "turn raw recordings into a processed, split dataset",
    "synth": "generate a synthetic infant cohort in the raw format",
    "complexity": "count parameters and MACs of an architecture",
    "search": "run the architecture search (the main job)",
    "train": "train one architecture for the long schedule",
    "crossval": "K-fold cross-validation of one architecture (small cohorts)",
    "evaluate": "evaluate checkpoints on a split and write a report",
    "predict": "score new recordings with a trained model",
    "export": "export a trained model as one inference file",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: jaxcp <command> [args]\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<11} {text}")
        return 0 if argv else 2
    if argv[0] == "--version":  # with the malloc settings this process runs with (jaxcp.core.runtime)
        print(f"jaxcp {__version__} (GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')})")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r} (run `jaxcp --help`)", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"jaxcp.{name}")
    except ModuleNotFoundError:
        print(f"error: command {name!r} is not available in this version", file=sys.stderr)
        return 2
    return module.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
