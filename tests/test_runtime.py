from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jaxcp.core import runtime


def test_compilation_cache_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXCP_NO_CACHE", raising=False)
    monkeypatch.setenv("JAXCP_CACHE_DIR", str(tmp_path / "cache"))
    assert runtime.default_cache_dir() == tmp_path / "cache"
    monkeypatch.setenv("JAXCP_NO_CACHE", "1")
    assert runtime.enable_compilation_cache() is None and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("value, expected", [(None, 1.0), ("0", 0.0), ("2.5", 2.5), ("-1", None), ("soon", None)])
def test_cache_threshold_from_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("JAXCP_CACHE_MIN_COMPILE_S", raising=False)
    else:
        monkeypatch.setenv("JAXCP_CACHE_MIN_COMPILE_S", value)
    if expected is None:
        with pytest.raises(SystemExit, match="JAXCP_CACHE_MIN_COMPILE_S"):
            runtime.cache_min_compile_seconds()
    else:
        assert runtime.cache_min_compile_seconds() == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_malloc_arenas_are_capped_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert runtime.limit_malloc_arenas() is True
    # a restarted command keeps its one arena
    monkeypatch.setenv("GLIBC_TUNABLES", runtime.MALLOC_SETTINGS[runtime.DEFAULT_MALLOC])
    assert runtime.limit_malloc_arenas() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert runtime.limit_malloc_arenas() is False


@pytest.mark.parametrize(("argv", "expected"), [
    (["python", "-m", "jaxcp.search", "--config", "quick"], True),
    (["python", "-m", "jaxcp", "train"], True),
    (["python", "-mjaxcp.predict"], True),
    (["python", "-X", "dev", "-u", "-m", "jaxcp.search"], True),
    (["/venv/bin/python", "/venv/bin/jaxcp", "search"], True),
    (["python", "-m", "pytest", "tests"], False),
    (["python", "-m", "jaxcpx"], False),
    (["python", "-c", "import jaxcp"], False),
    (["python", "benchmarks/train_step.py"], False),
    (["python"], False),
])
def test_a_jaxcp_command_is_told_from_a_program_that_imports_jaxcp(argv, expected):
    assert runtime.started_as_command(argv) is expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables only")
def test_a_command_restarts_with_jaxcps_malloc_settings_unless_told_otherwise():
    def version(**env) -> str:
        unset = ("GLIBC_TUNABLES", runtime.NO_TUNING, runtime.MALLOC_CHOICE)
        base = {k: v for k, v in os.environ.items() if k not in unset}
        done = subprocess.run([sys.executable, "-m", "jaxcp", "--version"], capture_output=True, text=True,
                              env={**base, **env}, check=True)
        return done.stdout.strip().split("GLIBC_TUNABLES=")[1].rstrip(")")

    assert version() == runtime.MALLOC_SETTINGS[runtime.DEFAULT_MALLOC]
    assert runtime.MALLOC_SETTINGS[runtime.DEFAULT_MALLOC] == \
        "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1"
    assert version(**{runtime.NO_TUNING: "1"}) == ""
    assert version(JAXCP_MALLOC="system") == ""
    assert version(JAXCP_MALLOC="hugepages") == "glibc.malloc.hugetlb=1"
    bad = subprocess.run([sys.executable, "-m", "jaxcp", "--version"], capture_output=True, text=True,
                         env={**{k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}, "JAXCP_MALLOC": "fast"})
    assert bad.returncode != 0 and "JAXCP_MALLOC='fast'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert version(GLIBC_TUNABLES="glibc.malloc.arena_max=2") == "glibc.malloc.arena_max=2"  # the user's wins
