"""Process-wide JAX settings for command-line runs: persistent compilation cache and the global seed."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SEED = 1234


def default_cache_dir() -> Path:
    return Path(os.environ.get("JAXCP_CACHE_DIR", Path.home() / ".cache" / "jaxcp" / "xla"))


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache (compiled steps survive between runs).

    Set JAXCP_CACHE_DIR to choose the folder, or JAXCP_NO_CACHE=1 to disable it.
    """
    if os.environ.get("JAXCP_NO_CACHE"):
        return None
    import jax

    path = Path(path) if path is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
