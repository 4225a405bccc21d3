"""Atomic writes: complete files with ordinary permissions, directories replaced only when complete."""

import os
import stat

import numpy as np

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
