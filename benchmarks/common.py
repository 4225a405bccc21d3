"""What every benchmark records beside its figures, and how it writes them.

`environment()` is the machine, the software, the load and the code a figure was measured with; every
benchmark merges it into its JSON at the top level, so `benchmarks/README.md` can say for each README figure
where it came from and `tests/test_evidence.py` can check it. `write_json` writes atomically.

Import it from a benchmark script as `import common` after putting this folder on `sys.path` (the scripts
run as files, not as a package).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def git_commit() -> str:
    """The commit the code was at, with `+dirty` when tracked files differ from it ("unknown" outside git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a coordinator of processes started here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(load_before: tuple[float, float, float] | None = None) -> dict:
    """Machine, versions, load averages (before the measurement when given, and now), commit and date."""
    import jax  # here, so that scripts that set XLA_FLAGS before importing JAX can import this first
    import numpy as np

    return {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_average_before": list(load_before) if load_before is not None else None,
        "load_average_after": list(os.getloadavg()),
        "python": sys.version.split()[0], "jax": jax.__version__, "numpy": np.__version__,
        "backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()],
        "git": git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def write_text(path: Path, text: str) -> Path:
    """Write `text` atomically (write then rename); returns the path."""
    from jaxcp.core import atomic  # here: a benchmark may time its own first JAX import

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)
    return path


def write_json(path: Path, result: dict) -> Path:
    """Write `result` as indented JSON atomically (write then rename); returns the path."""
    return write_text(path, json.dumps(result, indent=2) + "\n")
