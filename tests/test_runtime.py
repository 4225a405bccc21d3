from __future__ import annotations

import sys

import pytest

from jaxcp.core import runtime


def test_compilation_cache_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXCP_NO_CACHE", raising=False)
    monkeypatch.setenv("JAXCP_CACHE_DIR", str(tmp_path / "cache"))
    assert runtime.default_cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("JAXCP_NO_CACHE", "1")
    assert runtime.enable_compilation_cache() is None and not (tmp_path / "cache").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_malloc_arenas_are_capped_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert runtime.limit_malloc_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert runtime.limit_malloc_arenas() is False
