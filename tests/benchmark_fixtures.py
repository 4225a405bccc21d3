"""A module-scoped fixture that imports one of the benchmarks/ scripts (benchmarks/ on sys.path meanwhile)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_fixture(script: str, name: str):
    """The fixture `name`: the module of benchmarks/<script>.py, for the tests of one test module."""

    @pytest.fixture(scope="module", name=name)
    def module():
        sys.path.insert(0, str(BENCHMARKS))
        try:
            yield importlib.import_module(script)
        finally:
            sys.path.remove(str(BENCHMARKS))

    return module
