"""benchmarks/gpu_suite.py --dry-run: the GPU suite's code on CPU at tiny sizes, and what it writes."""

from __future__ import annotations

import json

import pytest
from benchmark_fixtures import benchmark_fixture

suite = benchmark_fixture("gpu_suite", "suite")


def test_a_spent_budget_skips_parts_and_says_so(suite):
    results = suite.run_suite(suite.DRY, 0.0, ["device", "memory"])
    assert results["device"] == results["memory"] == {"skipped": "time budget of 0 s spent"}
    assert results["targets"]["paper_student_under_60_s"] == {"measured_s": None, "met": None}


@pytest.mark.slow
def test_dry_run_measures_every_part_and_writes_json_and_markdown(suite, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCP_NO_CACHE", "1")
    # no time budget to speak of: on a loaded machine the default one can run out before the search part
    assert suite.main(["--dry-run", "--budget-s", "3600", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_suite_cpu_dry.json").read_text())
    r = result["results"]
    assert result["dry_run"] and result["backend"] == "cpu" and result["size"]["window"] == 30
    assert all(r["device"]["matmul_gflops"][p] > 0 for p in ("float32", "tf32", "bfloat16"))
    memory = {(row["formulation"], row["remat"]): row for row in r["memory"]["rows"]}
    assert set(memory) == set(suite.DRY.memory_grid)
    none, full = memory["matmul", "none"], memory["matmul", "full"]
    assert 0 < full["temp_bytes_per_student"] < none["temp_bytes_per_student"]
    assert none["students_fit"] == int(none["memory_bytes"] // none["temp_bytes_per_student"]) >= 1
    rows = {row["students"]: row for row in r["throughput"]["rows"]}
    assert set(rows) == {1, 2} and all(row["train_windows_per_s"] > 0 for row in rows.values())
    assert rows[2]["speedup_over_one"] == pytest.approx(rows[2]["train_windows_per_s"] / rows[1]["train_windows_per_s"])
    assert r["student"]["epochs_run"] == 1 and r["student"]["student_s"] > 0
    assert r["search"]["students"] == 1 and r["search"]["seconds_search"] > 0
    eight = r["targets"]["eight_students_5x_one"]
    assert eight == {"measured_speedup": None, "met": None}  # no 8-student row in a dry run
    assert r["targets"]["paper_student_under_60_s"]["met"] == (r["student"]["student_s"] < 60)
    text = (tmp_path / "gpu_suite_cpu_dry.md").read_text()
    assert "| formulation | remat | temporaries per student (GB) |" in text
    assert f"| 2 | {rows[2]['remat']} |" in text and "Paper-scale student:" in text
