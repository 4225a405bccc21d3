"""Atomic file writes: write to a temporary sibling, then rename over the target.

A reader (or a later run) sees either the old file or the complete new one, never half of it. What a
killed write left beside its target (`.<name>.xxxxxxxx.tmp`, `.<name>.old.xxxxxxxx`) is removed by the next
write of the same target; a temporary this process is still writing (another thread writing the same target)
is not stale and is left alone.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from jaxcp.core.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_IN_FLIGHT: set[Path] = set()  # temporaries this process is writing (not stale)
_IN_FLIGHT_LOCK = threading.Lock()


def _landed(tmp: Path) -> None:
    """`tmp` was renamed to its target or removed: no longer in flight."""
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT.discard(Path(tmp))


def remove_stale(path: str | Path) -> list[Path]:
    """Remove what an earlier, killed write of `path` left beside it (its temporary file or folder, or the
    old copy `commit_dir` was replacing); returns what was removed. Only this module's own names match, and
    never a temporary this process is still writing."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(old\.)?[a-z0-9_]{{8}}(\.tmp)?$")
    if not path.parent.is_dir():
        return []
    with _IN_FLIGHT_LOCK:
        stale = [p for p in path.parent.iterdir()
                 if pattern.match(p.name) and (p.name.endswith(".tmp") or ".old." in p.name)
                 and p not in _IN_FLIGHT]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
    return stale


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    with _IN_FLIGHT_LOCK:  # created and registered at once: no remove_stale in between
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        _IN_FLIGHT.add(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _landed(tmp)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def append_line(path: str | Path, line: str) -> None:
    """Append one line (rewrites the file atomically, so a kill never leaves a torn line)."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    write_bytes(path, old + line.rstrip("\n").encode("utf-8") + b"\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    write_bytes(path, buffer.getvalue())


def fresh_dir(path: str | Path) -> Path:
    """A new empty temporary directory beside `path`, to be filled and then `commit_dir`-ed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    with _IN_FLIGHT_LOCK:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        _IN_FLIGHT.add(tmp)
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 folders
    return tmp


def commit_dir(tmp: str | Path, path: str | Path) -> None:
    """Move a filled temporary directory to `path`, replacing what was there only once it is complete."""
    tmp, path = Path(tmp), Path(path)
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
        old.rmdir()
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    _landed(tmp)


def check_out_folder(path: str | Path, option: str = "--out") -> Path:
    """`path` can become (or already is) a folder: an InputError naming it otherwise. Commands call this
    before any work, so that a bad output location never costs a run."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder ({option})")
    _check_parents(path, option)
    return path


def check_out_file(path: str | Path, option: str = "--out") -> Path:
    """`path` can be written as a file: not a folder, and under folders (or nothing yet)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file name ({option})")
    _check_parents(path, option)
    return path


def _check_parents(path: Path, option: str) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{path}: {parent} is not a folder ({option})")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"{path}: cannot write into {parent} ({option})")
            return
