"""Process-wide settings for command-line runs: persistent compilation cache, host memory, global seed."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

DEFAULT_SEED = 1234


def default_cache_dir() -> Path:
    return Path(os.environ.get("JAXCP_CACHE_DIR", Path.home() / ".cache" / "jaxcp" / "xla"))


MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX does) unless the environment sets them.

    XLA compiles and runs on many threads; with glibc's default of up to 8 arenas per core each keeps
    freed memory, which showed as a few hundred MB of extra resident memory in a quick search. No effect
    (False) outside Linux/glibc.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, int(arenas)))  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache (compiled steps survive between runs), and cap malloc
    arenas (`limit_malloc_arenas`); every command calls this first.

    Set JAXCP_CACHE_DIR to choose the folder, or JAXCP_NO_CACHE=1 to disable the cache.
    """
    limit_malloc_arenas()
    if os.environ.get("JAXCP_NO_CACHE"):
        return None
    import jax

    path = Path(path) if path is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
