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
    if "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):  # set by `tune_allocator`, or by the user
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, int(arenas)))  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False


# glibc's malloc keeps what XLA frees and gives it out again: no block is mapped from the kernel (mmap_max=0),
# none is given back (trim_threshold 64 GiB), one arena. XLA:CPU allocates a multi-GB temporary buffer for
# every call of a compiled step; with glibc's defaults each is mapped fresh and faulted in 4 KiB page by page
# (1.6 million page faults per training step of the paper's best architecture at batch 32 and 150 frames).
# `python benchmarks/malloc.py` measures it (README "Host memory"): the step about 20 % faster at the same peak
# memory there, but a heap that never shrinks can fragment and raise the peak elsewhere: JAXCP_MALLOC chooses.
MALLOC_SETTINGS = {
    "retain": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1",
    "hugepages": "glibc.malloc.hugetlb=1",  # transparent huge pages for mapped blocks: fewer faults, same memory
    "system": "",  # glibc's defaults
}
DEFAULT_MALLOC = "retain"
MALLOC_CHOICE = "JAXCP_MALLOC"  # a name of MALLOC_SETTINGS; DEFAULT_MALLOC when unset
NO_TUNING = "JAXCP_SYSTEM_MALLOC"  # =1: the same as JAXCP_MALLOC=system


def started_as_command(argv: list[str] | None = None) -> bool:
    """Whether this process was started as a jaxcp command (`jaxcp ...` or `python -m jaxcp[.command] ...`),
    not a program that imports jaxcp (a test runner, a notebook)."""
    argv = list(getattr(sys, "orig_argv", [])) if argv is None else argv
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-X", "-W"):  # interpreter options that take a value
            next(args, None)
        elif arg == "-m" or arg.startswith("-m"):
            module = arg[2:] or next(args, "")
            return module.split(".")[0] == "jaxcp"
        elif arg == "-c" or arg.startswith("-c") or arg == "-":
            return False
        elif not arg.startswith("-"):
            return Path(arg).name == "jaxcp"
    return False


def tune_allocator(force: bool = False) -> bool:
    """Restart this process (same interpreter, same arguments) with GLIBC_TUNABLES = the malloc setting
    JAXCP_MALLOC names (`MALLOC_SETTINGS`; default `retain`) when it was started as a jaxcp command (or `force`),
    on Linux, unless GLIBC_TUNABLES is already set (a restarted process has it; a user's own setting wins) or
    the setting is `system` (or JAXCP_SYSTEM_MALLOC=1). An unknown JAXCP_MALLOC is an error. Returns False where
    nothing is done; otherwise it does not return. Call it before anything is computed (jaxcp's package
    import calls it, so `jaxcp ...` and `python -m jaxcp.X` restart before JAX is imported)."""
    choice = "system" if os.environ.get(NO_TUNING) else os.environ.get(MALLOC_CHOICE, DEFAULT_MALLOC)
    if choice not in MALLOC_SETTINGS:
        raise SystemExit(f"error: {MALLOC_CHOICE}={choice!r}: must be one of {', '.join(MALLOC_SETTINGS)}")
    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ or choice == "system":
        return False
    if not (force or started_as_command()) or not getattr(sys, "orig_argv", None):
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, "GLIBC_TUNABLES": MALLOC_SETTINGS[choice]}
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    return False  # not reached


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache (compiled steps survive between runs), and cap malloc
    arenas (`limit_malloc_arenas`); every command calls this first.

    Set JAXCP_CACHE_DIR to choose the folder, or JAXCP_NO_CACHE=1 to disable the cache. Programs that compiled
    in under JAXCP_CACHE_MIN_COMPILE_S seconds (default 1) are not stored.
    """
    limit_malloc_arenas()
    if os.environ.get("JAXCP_NO_CACHE"):
        return None
    import jax

    path = Path(path) if path is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", cache_min_compile_seconds())
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def cache_min_compile_seconds() -> float:
    """JAXCP_CACHE_MIN_COMPILE_S (default 1): programs compiled faster than this are not cached (a bad value
    is a one-line error)."""
    value = os.environ.get("JAXCP_CACHE_MIN_COMPILE_S", "1")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise SystemExit(f"error: JAXCP_CACHE_MIN_COMPILE_S={value!r}: must be a number of seconds, 0 or more")
    return seconds
