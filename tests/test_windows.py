"""Evaluation windows and AutoCP's training-window sampling."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, CompileCounter, other_train_data, tiny_data

from jaxcp.core.errors import InputError
from jaxcp.data.dataset import make_dataset
from jaxcp.data.windows import (
    SAMPLINGS,
    TrainPlan,
    balanced_window_plan,
    cut_windows,
    eval_window_index,
    eval_window_starts,
    make_eval_windows,
    sample_train_windows,
    train_window_bounds,
    train_window_plan,
)
from jaxcp.training import students


def encoded(lengths: list[int], num_joints: int = 2):
    """A Dataset whose x at (infant i, frame t) is 1000 i + t (y = -x): a window says where it came from."""
    seqs = []
    for i, n in enumerate(lengths):
        x = np.repeat(1000.0 * i + np.arange(n, dtype=np.float32)[:, None], num_joints, 1)
        seqs.append(np.stack([x, -x], -1))
    return make_dataset([f"i{i}" for i in range(len(lengths))], [i % 2 for i in range(len(lengths))], seqs,
                        "test", 30.0)


# --------------------------------------------------------------------------------------------------------
# Evaluation windows

@pytest.mark.parametrize(
    "length, window, hop, expected",
    [
        (150, 150, 75, [0]),
        (151, 150, 75, [0, 1]),
        (225, 150, 75, [0, 75]),
        (300, 150, 75, [0, 75, 150]),  # AutoCP would add 150 a second time
        (301, 150, 75, [0, 75, 150, 151]),
        (200, 150, 75, [0, 50]),
        (10, 4, 3, [0, 3, 6]),
        (11, 4, 3, [0, 3, 6, 7]),
    ],
)
def test_eval_window_starts_by_hand(length, window, hop, expected):
    starts = eval_window_starts(length, window, hop)
    assert starts.dtype == np.int32
    np.testing.assert_array_equal(starts, expected)


@pytest.mark.parametrize("length", range(150, 700, 13))
def test_eval_windows_cover_the_recording_once_each(length):
    starts = eval_window_starts(length)
    assert starts[0] == 0 and starts[-1] + 150 == length
    assert len(set(starts.tolist())) == len(starts) and (np.diff(starts) > 0).all()
    assert (np.diff(starts) <= 75).all()
    autocp_count = (length - 150) // 75 + 2  # AutoCP, duplicate included
    assert len(starts) == autocp_count - ((length - 150) % 75 == 0)


def test_eval_window_short_recordings():
    with pytest.raises(InputError, match="149 frames is shorter than a window of 150"):
        eval_window_starts(149)
    np.testing.assert_array_equal(eval_window_starts(149, tile=True), [0])
    with pytest.raises(InputError, match="has no windows"):
        eval_window_starts(0, tile=True)
    with pytest.raises(InputError, match="must be >= 1"):
        eval_window_starts(300, hop=0)


def test_make_eval_windows_cuts_the_right_frames():
    data = encoded([6, 9])
    out = make_eval_windows(data, window=4, hop=2)
    np.testing.assert_array_equal(out.owner, [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(out.starts, [0, 2, 0, 2, 4, 5])
    assert out.windows.shape == (6, 4, 2, 2) and out.windows.dtype == np.float32
    expected_x = 1000 * out.owner[:, None] + out.starts[:, None] + np.arange(4)[None]
    np.testing.assert_array_equal(out.windows[..., 0, 0], expected_x)
    np.testing.assert_array_equal(out.windows[..., 1, 1], -expected_x)


def test_make_eval_windows_short_recordings_error_or_tile():
    data = encoded([3, 8])
    with pytest.raises(InputError, match="infant 'i0'.*shorter than a window of 5"):
        make_eval_windows(data, window=5, hop=5)
    out = make_eval_windows(data, window=5, hop=5, tile=True)
    np.testing.assert_array_equal(out.owner, [0, 1, 1])
    np.testing.assert_array_equal(out.windows[0, :, 0, 0], [0, 1, 2, 0, 1])  # the recording repeated
    np.testing.assert_array_equal(out.windows[2, :, 0, 0], 1000 + np.arange(3, 8))


def test_eval_window_index_and_cut_windows_on_device_equal_the_host_windows():
    data = encoded([7, 12, 9])
    owner, starts = eval_window_index(data.lengths, window=5, hop=3, ids=data.ids)
    host = make_eval_windows(data, window=5, hop=3)
    np.testing.assert_array_equal(owner, host.owner)
    np.testing.assert_array_equal(starts, host.starts)
    device = jax.jit(cut_windows, static_argnames="window")(data.coords, owner, starts, window=5)
    np.testing.assert_array_equal(np.asarray(device), host.windows)
    with pytest.raises(InputError, match="infant 'i0'"):
        eval_window_index(data.lengths, window=8, ids=data.ids)


# --------------------------------------------------------------------------------------------------------
# Training windows

def test_train_window_plan_by_hand():
    plan = train_window_plan(np.array([1, 0, 1]), parts_positive=3, parts_negative=2)
    np.testing.assert_array_equal(plan.infant, [0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(plan.part, [0, 1, 2, 0, 1, 0, 1, 2])
    np.testing.assert_array_equal(plan.num_parts, [3, 3, 3, 2, 2, 3, 3, 3])
    assert all(a.dtype == np.int32 for a in plan)
    default = train_window_plan(np.array([1, 0, 0]))
    assert len(default.infant) == 30 + 5 + 5
    with pytest.raises(InputError, match="parts per infant"):
        train_window_plan(np.array([1]), parts_positive=0)


def test_train_window_bounds_by_hand():
    # T = 1000, W = 150, P = 5: part size 200, last start 850.
    plan = TrainPlan(np.zeros(5, np.int32), np.arange(5, dtype=np.int32), np.full(5, 5, np.int32))
    low, high = train_window_bounds(1000, plan, 150)
    np.testing.assert_array_equal(low, [0, 200, 400, 600, 800])
    np.testing.assert_array_equal(high, [200, 400, 600, 800, 850])
    # P = 30 on a short recording: late parts collapse onto the last start
    plan = TrainPlan(np.zeros(30, np.int32), np.arange(30, dtype=np.int32), np.full(30, 30, np.int32))
    low, high = train_window_bounds(300, plan, 150)
    assert int(low[0]) == 0 and int(high[0]) == 10 and int(low[-1]) == 150 and int(high[-1]) == 150
    with pytest.raises(InputError, match="at least 150 frames"):
        train_window_bounds(100, plan, 150)


@functools.partial(jax.jit, static_argnames=("window", "shuffle"))
def _sample(key, coords, plan, window, shuffle):
    return sample_train_windows(key, coords, plan, window=window, shuffle=shuffle)


def test_sample_train_windows_cuts_planned_windows_inside_their_parts():
    data = encoded([40, 25, 33])  # tiled to T = 40
    plan = train_window_plan(data.labels, parts_positive=4, parts_negative=2)  # labels 0, 1, 0
    windows, infant = _sample(jax.random.key(0), data.coords, plan, window=10, shuffle=True)
    windows, infant = np.asarray(windows), np.asarray(infant)
    assert windows.shape == (len(plan.infant), 10, 2, 2) and infant.dtype == np.int32
    assert sorted(infant.tolist()) == sorted(plan.infant.tolist())  # a permutation of the plan
    starts = windows[:, 0, 0, 0] - 1000 * infant  # frame index of the first frame (tiled position)
    for m in range(len(infant)):
        i = infant[m]
        expected = data.coords[i, int(starts[m]):int(starts[m]) + 10]
        np.testing.assert_array_equal(windows[m], expected)
    # unshuffled, the starts follow the plan's parts: P = 2 on T = 40, W = 10 -> [0, 20] and [20, 30]
    data = encoded([40, 40, 40])
    for seed in range(5):
        windows, infant = _sample(jax.random.key(seed), data.coords, plan, window=10, shuffle=False)
        np.testing.assert_array_equal(np.asarray(infant), plan.infant)
        starts = np.asarray(windows)[:, 0, 0, 0] - 1000 * plan.infant
        low, high = (np.asarray(b) for b in train_window_bounds(40, plan, 10))
        assert ((starts >= low) & (starts <= high)).all()


def test_sample_train_windows_starts_are_uniform_and_keyed():
    # one infant, P = 1 on T = 12 with W = 8: starts uniform on 0..4 inclusive
    data = encoded([12])
    plan = TrainPlan(np.zeros(2000, np.int32), np.zeros(2000, np.int32), np.ones(2000, np.int32))
    windows, _ = _sample(jax.random.key(3), data.coords, plan, window=8, shuffle=False)
    starts = np.asarray(windows)[:, 0, 0, 0].astype(int)
    freq = np.bincount(starts, minlength=5) / len(starts)
    assert starts.min() == 0 and starts.max() == 4
    np.testing.assert_allclose(freq, 0.2, atol=0.04)
    again, _ = _sample(jax.random.key(3), data.coords, plan, window=8, shuffle=False)
    other, _ = _sample(jax.random.key(4), data.coords, plan, window=8, shuffle=False)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(windows))
    assert not np.array_equal(np.asarray(other), np.asarray(windows))


def test_the_training_program_compiles_once_per_shape():
    """`sample_train_windows` has no jitted entry point of its own: the engine's epoch program samples each
    epoch's windows. After one epoch, a new run on other coordinates, labels and plan rows of the same
    shapes (another cohort of the same size) compiles nothing: the plan is data, not part of the program."""
    train_data, val_data = tiny_data()
    first = students.StudentRun(TINY_ARCH, [TINY_HPARAMS] * 2, [0, 1], train_data, val_data, LAYOUT, TINY_CONFIG)
    first.run_epoch()  # compiles, unless an earlier test of this process did
    other = other_train_data(train_data, seed=2)
    assert not np.array_equal(np.asarray(other.plan.infant), np.asarray(train_data.plan.infant))
    with CompileCounter() as counter:
        again = students.StudentRun(TINY_ARCH, [TINY_HPARAMS] * 2, [0, 1], other, val_data, LAYOUT, TINY_CONFIG)
        again.run_epoch()
    assert counter.events == [] and again.compiled.seconds == 0.0
    assert again.tracker.history[0][0]["loss"] != first.tracker.history[0][0]["loss"]  # it saw the new data


def test_balanced_window_plan_class_totals():
    """3 CP + 12 non-CP infants at 30/5: M = 150 windows; 75 per class -> 25 per CP infant and
    round(6.25) = 6 per non-CP infant (72 in all)."""
    labels = np.array([1, 1, 1] + [0] * 12)
    plan = balanced_window_plan(labels, parts_positive=30, parts_negative=5)
    counts = np.bincount(plan.infant, minlength=labels.size)
    np.testing.assert_array_equal(counts, [25] * 3 + [6] * 12)
    assert counts[labels == 1].sum() == 75 and counts[labels == 0].sum() == 72
    np.testing.assert_array_equal(plan.num_parts, counts[plan.infant])
    np.testing.assert_array_equal(plan.part[:25], np.arange(25))  # parts count 0..P-1 per infant
    # a balanced cohort: 10 + 10 at 30/5 -> M = 350, 17.5 -> 18 per infant of either class
    even = balanced_window_plan(np.array([1, 0] * 10), 30, 5)
    assert set(np.bincount(even.infant).tolist()) == {18}
    # one class only: all M windows to it; a tiny share is at least one window
    np.testing.assert_array_equal(np.bincount(balanced_window_plan(np.zeros(4, int), 30, 5).infant), [5] * 4)
    rare = balanced_window_plan(np.array([1] + [0] * 100), parts_positive=1, parts_negative=1)
    assert np.bincount(rare.infant)[0] == 51 and set(np.bincount(rare.infant)[1:].tolist()) == {1}
    assert SAMPLINGS == {"autocp": train_window_plan, "balanced": balanced_window_plan}
    with pytest.raises(InputError, match="parts per infant"):
        balanced_window_plan(labels, parts_positive=0)
