"""Several local devices: groups of students placed one per device, the student axis sharded over devices,
programs compiled ahead in the background; results independent of the device count.

The multi-device checks run this file as a script in a subprocess with 4 forced CPU devices (XLA_FLAGS must
be set before JAX starts), which trains the same students on one device and on four and reports both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, cohort

from jaxcp.data.dataset import load_dataset
from jaxcp.training import engine, students
from jaxcp.training.experiment import Experiment
from jaxcp.training.parallel import Group, assign_devices
from jaxcp.training.placement import on_device, shard_students

FORCED_DEVICES = 4


def test_groups_go_to_the_least_loaded_device_in_order():
    assert assign_devices([8, 8, 8], 1) == [0, 0, 0]
    assert assign_devices([8, 4, 2, 2, 4], 2) == [0, 1, 1, 1, 0]  # loads 8|4 -> 8|6 -> 8|8 -> 10|8 ...
    assert assign_devices([2, 2, 2, 2, 2], 4) == [0, 1, 2, 3, 0]
    assert assign_devices([], 3) == []


def _forced_device_results() -> dict:
    """In a process with FORCED_DEVICES CPU devices: the same groups on one device and on all, and a run of 4
    students on one device and sharded over 4. Floats as JSON (exact round trip)."""
    devices = jax.local_devices()
    assert len(devices) == FORCED_DEVICES, devices
    placed = []

    class Recording(Experiment):
        def student_run(self, *args, placement=None, **kwargs):
            run = super().student_run(*args, placement=placement, **kwargs)
            placed.append(sorted({d.id for leaf in jax.tree.leaves(run.state) for d in leaf.devices()}))
            return run

    data = cohort()
    exp = Recording(LAYOUT, load_dataset(data, "train"), load_dataset(data, "val"), TINY_CONFIG, TINY_CONFIG)
    slow = dataclasses.replace(TINY_HPARAMS, lr=0.001)
    hparams = (TINY_HPARAMS, slow, TINY_HPARAMS, slow)
    groups = [Group(TINY_ARCH, hparams, (1, 2, 3, 4)), Group(TINY_ARCH, hparams[::-1], (5, 6, 7, 8))]

    def summary(results):
        return [[{"reward": r.reward, "history": r.history, "waited": r.seconds_compile_waited,
                  "compile": r.seconds_compile} for r in rs] for rs in results]  # fmt: skip

    programs = engine.get_programs(students.program_spec(TINY_ARCH, LAYOUT, TINY_HPARAMS.batch_size, TINY_CONFIG))

    def executables():  # compiled executables per placement (device ids)
        return sorted([d.id for d in key[1].devices] for key in programs.compiled)

    finished = []
    out = {"one": summary(exp.train_groups(groups, devices[:1])), "placed_one": list(placed)}
    out["executables_one"] = executables()
    placed.clear()
    out["all"] = summary(exp.train_groups(groups, devices, on_done=lambda k, rs: finished.append(k)))
    out["placed_all"], out["finished"], out["executables_all"] = list(placed), finished, executables()
    # one run of 4 students: on one device (the groups' programs, compiled), and sharded over the 4 devices
    seeds = (9, 10, 11, 12)
    run_one = exp.student_run(TINY_ARCH, hparams, seeds, placement=on_device(devices[0]))
    run_all = exp.student_run(TINY_ARCH, hparams, seeds, placement=shard_students(4))
    out["shards"] = len(run_all.state.step.addressable_shards)
    out["shard_devices"] = sorted(s.device.id for s in run_all.state.step.addressable_shards)
    reports = [(run_one.run_epoch(), run_all.run_epoch()) for _ in range(TINY_CONFIG.epochs)]
    out["sharded_losses"] = [[r.losses.tolist() for r in pair] for pair in reports]
    out["sharded_auc"] = [[np.nan_to_num(r.val_auc).tolist() for r in pair] for pair in reports]
    pairs = list(zip(jax.tree.leaves(run_one.state.params), jax.tree.leaves(run_all.state.params), strict=True))
    diffs = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel() for a, b in pairs])
    out["sharded_params_diff"] = [float(diffs.max()), float(np.median(diffs))]
    out["steps"] = int(np.asarray(run_one.state.step)[0])
    out["not_divisible"] = shard_students(3) is None
    return out


@pytest.fixture(scope="module")
def forced() -> dict:
    """The script's results (slow: it compiles the programs once per device and once sharded, minutes)."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={FORCED_DEVICES}",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), str(Path(__file__).parent)]))
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_groups_on_four_devices_equal_one_device(forced):
    assert forced["placed_one"] == [[0], [0]]
    assert sorted(forced["placed_all"]) == [[0], [1]]  # two groups, two devices (compiled ahead, any order)
    assert sorted(forced["finished"]) == [0, 1]
    for one, four in zip(forced["one"], forced["all"], strict=True):
        for a, b in zip(one, four, strict=True):
            assert (a["reward"], a["history"]) == (b["reward"], b["history"])  # bit for bit on CPU
            assert len(a["history"]) == TINY_CONFIG.epochs and all(h["loss"] > 0 for h in a["history"])
            assert a["waited"] >= 0 and b["waited"] >= 0
    # executables are per device: init, epoch and predict once on device 0 for both groups (the compile
    # threads share them), then once more on device 1
    assert forced["executables_one"] == [[0]] * 3 and forced["executables_all"] == [[0]] * 3 + [[1]] * 3
    assert forced["one"][0][0]["compile"] + forced["one"][1][0]["compile"] > 0
    # two students of different learning rates in a group really differ (the comparison is not vacuous)
    assert forced["one"][0][0]["history"] != forced["one"][0][1]["history"]


@pytest.mark.slow
def test_student_axis_sharded_over_four_devices_equals_one_device(forced):
    """Sharded, XLA compiles another program (one student per device), so the numbers agree to float32
    rounding, not bit for bit (measured: losses within 2e-7 relative after one epoch)."""
    assert forced["shards"] == 4 and forced["shard_devices"] == [0, 1, 2, 3]
    for one, four in forced["sharded_losses"]:
        assert len(one) == 4 and np.allclose(one, four, rtol=1e-5, atol=0)
    assert forced["sharded_losses"][0][0] != forced["sharded_losses"][1][0]  # the second epoch trained on
    for one, four in forced["sharded_auc"]:
        assert np.allclose(one, four, atol=0.05)  # ranks of near-equal risks may swap
    # Adam moves a parameter by about lr per step whatever its gradient's size, so where a gradient is ~0 the
    # direction is rounding noise: the largest difference is bounded by lr x steps, the typical one is tiny
    largest, typical = forced["sharded_params_diff"]
    assert largest <= TINY_HPARAMS.lr * forced["steps"] and typical <= 1e-5
    assert forced["not_divisible"]


if __name__ == "__main__":
    print(json.dumps(_forced_device_results()))
