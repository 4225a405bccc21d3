"""benchmarks/scaling.py without running a search: the flags of a job's processes, the order of the rows, the
comparison with the first row and the files written (the search runs themselves: tests/test_distributed.py
and tests/test_search.py run the same commands)."""

from __future__ import annotations

import json
import os

from benchmark_fixtures import benchmark_fixture

scaling = benchmark_fixture("scaling", "scaling")


def test_the_processes_of_a_job_share_one_coordinator(scaling):
    assert scaling.job_flags(1, 0) == [[]]
    flags = scaling.job_flags(3, 4567)
    assert [f[f.index("--process-id") + 1] for f in flags] == ["0", "1", "2"]
    assert {f[f.index("--coordinator") + 1] for f in flags} == {"127.0.0.1:4567"}
    assert {f[f.index("--num-processes") + 1] for f in flags} == {"3"}


def test_rows_run_devices_then_processes_and_compare_with_the_first(scaling, tmp_path, monkeypatch):
    calls = []

    def fake_run(config, overrides, folder, devices, processes=1, threads=0):
        name = f"d{devices}_p{processes}"
        run = folder / name
        run.mkdir()
        reward = 0.25 if (devices, processes) == (4, 1) else 0.5  # the 4-device row differs from the first
        (run / "students.jsonl").write_text(json.dumps({"id": 0, "actions": [1], "reward": reward,
                                                        "rewards": [reward], "seconds": devices}) + "\n")
        (run / "controller_probabilities.json").write_text("[0.5, 0.5]")
        (run / "best.yaml").write_text("arch: {}\n")
        calls.append((config, tuple(overrides), devices, processes, threads))
        return {"devices": devices, "processes": processes, "groups": 1, "seconds_search": 10.0 * devices,
                "students_per_hour": 360.0 / devices, "seconds_compile": 2.0, "seconds_compile_hidden": 0.5,
                "seconds_compile_waited": 1.5, "run": name, "load_average_1min": [1.0, 1.5]}  # fmt: skip

    monkeypatch.setattr(scaling, "run_count", fake_run)
    monkeypatch.setattr(scaling, "RESULTS", tmp_path)
    assert scaling.main(["--config", "quick", "--devices", "1", "4", "--processes", "1", "2",
                         "--set", "student.epochs=2", "--name", "s"]) == 0  # fmt: skip
    threads = max(os.cpu_count(), 4)  # every run: one XLA:CPU pool size, at least the largest device count
    assert calls == [("quick", ("student.epochs=2",), 1, 1, threads), ("quick", ("student.epochs=2",), 4, 1, threads),
                     ("quick", ("student.epochs=2",), 1, 2, threads)]  # fmt: skip
    result = json.loads((tmp_path / "s.json").read_text())
    assert [r["same_as_first"] for r in result["rows"]] == [True, False, True] and result["xla_threads"] == threads
    assert [r["students_differing"] for r in result["rows"]] == [[], [{"id": 0, "reward": 0.25, "reward_first": 0.5}],
                                                                 []]  # fmt: skip
    assert result["overrides"] == ["test_split=", "student.epochs=2"]
    table = (tmp_path / "s.md").read_text().splitlines()
    assert table[-3:] == ["| 1 | 1 | 1 | 10 | 360 | 2.0 | 0.5 | 1.5 | 1.0, 1.5 | yes |",
                          "| 4 | 1 | 1 | 40 | 90 | 2.0 | 0.5 | 1.5 | 1.0, 1.5 | NO |",
                          "| 1 | 2 | 1 | 10 | 360 | 2.0 | 0.5 | 1.5 | 1.0, 1.5 | yes |"]  # fmt: skip
