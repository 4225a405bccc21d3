"""Compiled student programs: vmapped students equal students trained alone, and nothing recompiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, CompileCounter, tiny_data

from jaxcp.training import engine, optim, students
from jaxcp.training.hparams import HParams

# two students that differ in everything that can be vmapped: seed, optimizer, lr, weight decay, momentum
STUDENTS = [
    TINY_HPARAMS,
    HParams(optimizer="sgd", lr=0.001, weight_decay=0.0001, momentum=0.9, batch_size=16),
]


@pytest.fixture(scope="module")
def run() -> students.StudentRun:
    train_data, val_data = tiny_data()
    return students.StudentRun(TINY_ARCH, STUDENTS, [0, 1], train_data, val_data, LAYOUT, TINY_CONFIG)


def test_vmapped_students_equal_students_trained_alone(run):
    """One epoch of both students together == one epoch of each alone, up to float rounding.

    Compared: the epoch loss and the trained models' validation predictions for both students, and every
    array of the state for the SGD student. Adam's parameters are not compared leaf by leaf: biases followed
    by BatchNorm have a zero gradient up to rounding noise, which Adam normalises into full-size steps, so
    those leaves differ between any two programs (PyTorch behaves the same). Both students' optimizer
    states are (`assert_same_optimizer_state`): there the noise stays at its own, negligible size.
    """
    train_data, val_data = tiny_data()
    keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(run.epoch_keys)
    lr = jnp.float32(optim.lr_factor(0))
    start = jax.tree.map(jnp.copy, run.state)
    together, together_metrics = run.programs.epoch(jax.tree.map(jnp.copy, start), keys, lr, train_data)
    together_probs = np.asarray(run.programs.predict(together, val_data.features))
    for k in range(2):
        alone_start = engine.stack_students([engine.select_student(start, k)])
        alone, alone_metrics = run.programs.epoch(alone_start, keys[k : k + 1], lr, train_data)
        np.testing.assert_allclose(alone_metrics["loss"][0], together_metrics["loss"][k], rtol=1e-5)
        alone_probs = np.asarray(run.programs.predict(alone, val_data.features))[0]
        np.testing.assert_allclose(alone_probs, together_probs[k], atol=5e-4)
        assert_same_optimizer_state(alone.opt_state, engine.select_student(together, k).opt_state)
        if STUDENTS[k].optimizer == "sgd":
            for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(engine.select_student(together, k)),
                            strict=True):  # fmt: skip
                np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b), rtol=1e-5, atol=1e-7)
    # and the students really differ (different seeds and optimizers)
    assert not np.allclose(*(np.asarray(jax.tree.leaves(engine.select_student(together, k).opt_state)[1])
                             for k in range(2)))  # fmt: skip
    assert not np.allclose(together_probs[0], together_probs[1])


def assert_same_optimizer_state(alone, together) -> None:
    """Optimizer state of one student trained alone (leading axis 1) and in the vmapped program: integer
    leaves (step counts) equal; each float leaf within 5 % of its largest magnitude plus 1e-6 of the largest
    magnitude of its kind (mu, nu, ...: the rounding noise of the zero-gradient biases before BatchNorm,
    1e-20 against moments of 1e-8 to 1e-6). Measured: at most 1e-3 of a leaf's largest magnitude on one CPU,
    3.6 % on another (an AVX2-only AMD EPYC: the stem graph layer's kernel moments; likely a ReLU pre-activation
    that rounds to the other side of the kink, which changes a gradient element by a whole term). Two
    different students differ by the whole magnitude, so a mixed-up student axis still fails."""
    leaves = [(jax.tree_util.keystr(path), np.asarray(a)[0], np.asarray(b))
              for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(alone), jax.tree.leaves(together),
                                      strict=True)]  # fmt: skip
    scale: dict[str, float] = {}
    for name, _, b in leaves:
        kind = name.split("[")[0]
        scale[kind] = max(scale.get(kind, 0.0), float(np.abs(b).max(initial=0.0)))
    assert len(leaves) > 0
    for name, a, b in leaves:
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if not np.issubdtype(b.dtype, np.floating):
            np.testing.assert_array_equal(a, b, err_msg=name)
            continue
        atol = 5e-2 * float(np.abs(b).max(initial=0.0)) + 1e-6 * scale[name.split("[")[0]]
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=name)


def test_no_recompilation_across_epochs_and_students(run):
    """After a first epoch and validation, more epochs and new students of the same shapes trace nothing."""
    train_data, val_data = tiny_data()
    while run.epoch < 1:
        run.run_epoch()
    with CompileCounter() as counter:
        while not run.finished:
            report = run.run_epoch()
            assert report.evaluated
        other_hparams = [STUDENTS[1], STUDENTS[0]]
        again = students.StudentRun(TINY_ARCH, other_hparams, [7, 8], train_data, val_data, LAYOUT, TINY_CONFIG)
        again.run_epoch()
    assert counter.events == []
    assert again.compiled.seconds == 0.0
    with CompileCounter() as control:  # the counter does see a new program
        jax.jit(lambda x: x * 3 + 1)(jnp.ones(7))
    assert len(control.events) >= 2
    for result in run.results():
        assert result.status == "ok" and len(result.history) == TINY_CONFIG.epochs


def test_featurise_matches_per_window_features():
    from jaxcp.data.features import compute_features

    windows = (
        np.random.default_rng(0).normal(size=(5, TINY_CONFIG.window, LAYOUT.num_joints, 2)).astype(np.float32)
    )
    batched = engine.featurise(jnp.asarray(windows), LAYOUT, TINY_CONFIG.features, chunk=2)
    assert batched.shape == (5, TINY_CONFIG.features.num_streams, TINY_CONFIG.window, LAYOUT.num_joints, 4)
    for i in range(5):
        np.testing.assert_allclose(
            batched[i], compute_features(windows[i], LAYOUT, TINY_CONFIG.features), atol=1e-6
        )


def test_where_students_picks_per_student():
    new = {"a": jnp.ones((3, 2)), "b": jnp.arange(3.0)}
    old = {"a": jnp.zeros((3, 2)), "b": -jnp.arange(3.0)}
    out = engine.where_students(jnp.array([True, False, True]), new, old)
    np.testing.assert_array_equal(out["a"], [[1, 1], [0, 0], [1, 1]])
    np.testing.assert_array_equal(out["b"], [0, -1, 2])


class Marker:
    """Stands for a compiled executable (weakly referable)."""


def test_compiled_programs_are_evicted_with_their_cache_entry():
    """Executables live in the Programs of their spec: when an LRU like `get_programs` drops the spec, they
    go with it (a small LRU of the same kind here, so that the process-wide cache stays warm)."""
    import functools
    import gc
    import weakref

    cache = functools.lru_cache(maxsize=2)(engine.make_programs)
    first = cache(engine.ProgramSpec(TINY_ARCH, LAYOUT, batch_size=1))
    first.compiled["executable"] = Marker()
    ref = weakref.ref(first.compiled["executable"])
    del first
    cache(engine.ProgramSpec(TINY_ARCH, LAYOUT, batch_size=2))
    gc.collect()
    assert ref() is not None  # still cached
    cache(engine.ProgramSpec(TINY_ARCH, LAYOUT, batch_size=3))
    gc.collect()
    assert ref() is None
    assert engine.get_programs.cache_info().maxsize == engine.PROGRAM_CACHE_SIZE


def test_fold_epoch_trains_exactly_on_each_students_valid_windows():
    """The fold program with every entry of a plan valid is the normal epoch (same draws, order and steps,
    up to float rounding); a student with fewer valid windows than a batch takes no step: its state is left
    as it was. From freshly initialised students (whatever the other tests did to the shared run)."""
    train_data, val_data = tiny_data()
    run = students.StudentRun(TINY_ARCH, STUDENTS, [0, 1], train_data, val_data, LAYOUT, TINY_CONFIG)
    plan, size = train_data.plan, len(train_data.plan.infant)
    batch = STUDENTS[0].batch_size
    plans = engine.FoldPlan(*(jnp.asarray(np.stack([np.asarray(a)] * 2)) for a in plan),
                            num_valid=jnp.array([batch - 1, size], jnp.int32))  # fmt: skip
    keys = jax.vmap(lambda k: jax.random.fold_in(k, 3))(run.epoch_keys)
    lr = jnp.float32(optim.lr_factor(0))
    start = jax.tree.map(jnp.copy, run.state)
    normal, normal_metrics = run.programs.epoch(jax.tree.map(jnp.copy, start), keys, lr, train_data)
    folded, fold_metrics = run.programs.fold_epoch(jax.tree.map(jnp.copy, start), keys, lr, train_data, plans)
    # student 0 (adam): no batch entirely valid -> no step at all, not even BatchNorm statistics or the
    # counters; only the epoch's learning rate is set, as every epoch does
    before, after = engine.select_student(start, 0), engine.select_student(folded, 0)
    np.testing.assert_allclose(after.opt_state.hparams.lr, before.base_lr * lr, rtol=1e-6)
    after = after.replace(opt_state=after.opt_state._replace(hparams=before.opt_state.hparams))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(fold_metrics["loss"][0]) == 0.0  # no valid step: nothing averaged
    # student 1 (sgd), all valid: the normal epoch's loss, steps and parameters
    np.testing.assert_allclose(fold_metrics["loss"][1], normal_metrics["loss"][1], rtol=1e-5)
    assert int(folded.step[1]) == int(normal.step[1]) == int(start.step[1]) + size // batch
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(engine.select_student(normal, 1)),
                            jax.tree.leaves(engine.select_student(folded, 1)), strict=True):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6,
                                   err_msg=jax.tree_util.keystr(path))
    probs = np.asarray(run.programs.predict(folded, val_data.features))
    np.testing.assert_allclose(probs[1], np.asarray(run.programs.predict(normal, val_data.features))[1], atol=5e-4)


def test_one_student_runs_without_the_student_vmap_and_equals_it():
    w = jnp.arange(24.0).reshape(2, 3, 4) / 10
    x = jnp.arange(15.0).reshape(5, 3)
    fn = engine.over_students(lambda w, x: x @ w, (0, None))
    np.testing.assert_allclose(fn(w, x), jax.vmap(lambda w, x: x @ w, in_axes=(0, None))(w, x), rtol=1e-6)
    np.testing.assert_allclose(fn(w[:1], x), (x @ w[0])[None], rtol=1e-6)
    dots = [e for e in jax.make_jaxpr(fn)(w[:1], x).eqns if e.primitive.name == "dot_general"]
    assert [e.params["dimension_numbers"][1] for e in dots] == [((), ())]  # no batch (student) dimension
    dots = [e for e in jax.make_jaxpr(fn)(w, x).eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 1 and dots[0].outvars[0].aval.shape[0] in (2, 5)


def _scaled(factor, x):
    return factor * x


def test_a_student_program_keeps_its_function_name():  # compile-cache entries are named after it
    import functools

    assert engine.over_students(functools.partial(_scaled, 2.0), (0,)).__name__ == "_scaled"
    assert jax.jit(engine.over_students(_scaled, (None, 0))).lower(2.0, jnp.ones((1, 3))).as_text().count("_scaled")
