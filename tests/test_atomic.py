"""Atomic writes: complete files with ordinary permissions, directories replaced only when complete."""

import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from jaxcp.core import atomic


def test_write_text_replaces_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic.write_text(target, "old")
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # no temporary files left


def test_append_line_and_npy(tmp_path):
    atomic.append_line(tmp_path / "log.jsonl", "a")
    atomic.append_line(tmp_path / "log.jsonl", "b\n")
    assert (tmp_path / "log.jsonl").read_text() == "a\nb\n"
    atomic.save_npy(tmp_path / "x.npy", np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy", allow_pickle=False), [0, 1, 2])


def test_commit_dir_replaces_a_whole_folder(tmp_path):
    final = tmp_path / "result"
    final.mkdir()
    (final / "old.txt").write_text("old")
    tmp = atomic.fresh_dir(final)
    (tmp / "new.txt").write_text("new")
    atomic.commit_dir(tmp, final)
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_a_killed_writes_leftovers_are_removed_by_the_next_write_of_the_same_target(tmp_path):
    """A kill between creating a temporary and renaming it leaves `.<name>.xxxxxxxx.tmp` (or the old copy
    `.<name>.old.xxxxxxxx`); the next write of that target removes them, and nothing of other targets."""
    import tempfile

    stale_dir = Path(tempfile.mkdtemp(prefix=".out.", suffix=".tmp", dir=tmp_path))
    (stale_dir / "half.npy").write_bytes(b"\0" * 100)
    stale_old = Path(tempfile.mkdtemp(prefix=".out.old.", dir=tmp_path))
    _, stale_file = tempfile.mkstemp(prefix=".out.json.", suffix=".tmp", dir=tmp_path)
    keep = [tmp_path / ".out.json.notours", tmp_path / ".other.abcdefgh.tmp", tmp_path / ".outer.abcdefgh.tmp"]
    for path in keep:
        path.write_text("not a leftover of out")
    tmp = atomic.fresh_dir(tmp_path / "out")
    atomic.commit_dir(tmp, tmp_path / "out")
    assert not stale_dir.exists() and not stale_old.exists() and Path(stale_file).exists()
    atomic.write_text(tmp_path / "out.json", "{}")
    assert not Path(stale_file).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "out.json", *(p.name for p in keep)])


class _Torn(io.BufferedWriter):
    """A file that writes the first half of what it is given, then fails (a full disk, a kill)."""

    def write(self, data):
        self.written = super().write(bytes(data)[: len(data) // 2])
        super().flush()
        raise OSError(28, "No space left on device")


def test_a_write_failing_midway_leaves_the_old_file(tmp_path, monkeypatch):
    """The new content is half written when the write fails: the target still holds the old content, and
    nothing is left beside it (the half-written temporary file is removed)."""
    target = tmp_path / "result.json"
    atomic.write_text(target, "old content\n")
    real_fdopen = os.fdopen
    torn = []

    def fdopen(fd, mode="r", *args, **kwargs):
        assert mode == "wb"
        torn.append(_Torn(io.FileIO(fd, "wb")))
        return torn[-1]

    monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    for write in (lambda: atomic.write_text(target, "new content " * 1000),
                  lambda: atomic.append_line(target, "a line"),
                  lambda: atomic.save_npy(target, np.arange(1000))):  # fmt: skip
        with pytest.raises(OSError, match="No space"):
            write()
    monkeypatch.setattr(atomic.os, "fdopen", real_fdopen)
    assert [f.written > 0 for f in torn] == [True] * 3  # each failed after writing part of its data
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_threads_writing_the_same_target_never_remove_each_others_temporaries(tmp_path):
    """A write's remove_stale must not take another thread's in-flight temporary for a killed write's
    leftover (seen in CI: a search resumed in-process while the stopped one's argmax thread still wrote
    arch.yaml, and the rename failed with FileNotFoundError)."""
    import threading

    target, errors = tmp_path / "arch.yaml", []

    def writer(k):
        try:
            for i in range(200):
                atomic.write_text(target, f"writer {k} write {i}\n" * 50)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    text = target.read_text()
    assert text.startswith("writer ") and text.endswith(" write 199\n") and len(set(text.splitlines())) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["arch.yaml"]  # nothing left beside it
    stale = tmp_path / ".arch.yaml.abcd1234.tmp"  # a killed write's leftover is still removed
    stale.write_text("half")
    atomic.write_text(target, "new\n")
    assert not stale.exists() and target.read_text() == "new\n"
