"""Logit-table REINFORCE controller: analytic gradients, Adam step, baselines, padding, sampling, checkpoints.

`python tests/test_controller.py` prints the step-size simulation table quoted in the README.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcp.nas import controller

TINY = (3, 2, 1)
TABLE_I = (5, 4, 5, 6, 4, 1, 3, 3, 3, 3, 3, 5, 3, 3, 4, 4, 3, 5, 3, 3, 3, 3, 4, 3, 3)


def with_logits(state, rows):
    """The state with the given per-decision logits written into the padded table."""
    logits = np.zeros(state.logits.shape, np.float32)
    for d, row in enumerate(rows):
        logits[d, : len(row)] = row
    return state.replace(logits=jnp.asarray(logits))


def softmax_rows(rows):
    return [np.exp(r - np.max(r)) / np.exp(r - np.max(r)).sum() for r in map(np.asarray, rows)]


ROWS = [[0.3, -0.5, 1.1], [0.7, -0.2], [0.0]]


def test_init_is_uniform_with_padding_mask():
    state = controller.init(TINY)
    chex.assert_shape(state.logits, (3, 3))
    np.testing.assert_array_equal(state.mask, [[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    for probs, n in zip(controller.probabilities(state), TINY, strict=True):
        np.testing.assert_allclose(probs, np.full(n, 1 / n), rtol=1e-6)
    np.testing.assert_array_equal(controller.argmax(state), [0, 0, 0])
    assert state.config == controller.ControllerConfig()
    with pytest.raises(ValueError, match="at least one choice"):
        controller.init([3, 0])


@pytest.mark.parametrize("kwargs", [{"baseline": "ema"}, {"lr": 0.0}, {"baseline_decay": 1.0},
                                    {"min_bucket": 0}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        controller.ControllerConfig(**kwargs)


def test_probabilities_log_prob_and_argmax_follow_the_softmax():
    state = with_logits(controller.init(TINY), ROWS)
    expected = softmax_rows(ROWS)
    for got, want in zip(controller.probabilities(state), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    actions = np.array([[0, 1, 0], [2, 0, 0], [1, 1, 0]])
    want = [sum(np.log(expected[d][a[d]]) for d in range(3)) for a in actions]
    np.testing.assert_allclose(controller.log_prob(state, actions), want, rtol=1e-5)
    np.testing.assert_array_equal(controller.argmax(state), [2, 0, 0])


def test_loss_gradient_equals_analytic_reinforce_gradient():
    state = with_logits(controller.init(TINY), ROWS)
    actions = jnp.array([[0, 1, 0], [2, 0, 0], [2, 1, 0], [1, 0, 0]])
    advantages = jnp.array([0.4, -0.3, 0.9, 0.1])
    weights = jnp.array([1.0, 2.0, 0.5, 0.0])
    beta = 0.3
    grad = jax.grad(controller.reinforce_loss)(state.logits, state.mask, actions, advantages, weights, beta)
    probs = softmax_rows(ROWS)
    for d, p in enumerate(probs):
        # d log p_a / d z_j = 1[j = a] - p_j; dH/dz_j = -p_j (log p_j + H)
        onehot = np.eye(len(p))[np.asarray(actions[:, d])]
        pg = -((np.asarray(weights * advantages))[:, None] * (onehot - p[None, :])).sum(axis=0)
        entropy = -(p * np.log(p)).sum()
        want = pg - beta * (-p * (np.log(p) + entropy))
        np.testing.assert_allclose(grad[d, : len(p)], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(grad[d, len(p):], 0.0)


def test_first_update_is_one_adam_step_raising_rewarded_actions():
    config = controller.ControllerConfig(lr=0.1, baseline="none")
    state = with_logits(controller.init(TINY, config), ROWS)
    actions = np.array([[0, 1, 0], [0, 1, 0], [2, 0, 0]])
    rewards = np.array([0.9, 0.8, 0.1])
    new, info = controller.update(state, actions, rewards)
    grad = jax.grad(controller.reinforce_loss)(state.logits, state.mask, jnp.asarray(actions),
                                               jnp.asarray(rewards), jnp.ones(3), 0.0)
    # Adam's first step: m_hat = g, v_hat = g^2, so every logit moves by lr * g / (|g| + eps) ~ lr * sign(g)
    want = state.logits - 0.1 * grad / (jnp.abs(grad) + 1e-8)
    np.testing.assert_allclose(new.logits, want, rtol=1e-5, atol=1e-6)
    old_p, new_p = controller.probabilities(state), controller.probabilities(new)
    assert new_p[0][0] > old_p[0][0] and new_p[1][1] > old_p[1][1]
    assert int(new.step) == 1 and int(info["num_rollouts"]) == 3
    assert float(info["mean_reward"]) == pytest.approx(0.6)
    expected_loss = -(rewards * np.asarray(controller.log_prob(state, actions))).sum()
    assert float(info["loss"]) == pytest.approx(expected_loss, rel=1e-5)


def test_baselines():
    actions = np.array([[0, 1, 0], [2, 0, 0]])
    ma = controller.init(TINY, controller.ControllerConfig(baseline="moving_average", baseline_decay=0.9))
    ma, info1 = controller.update(ma, actions, [0.8, 0.6], [1.0, 3.0])
    assert float(info1["baseline"]) == pytest.approx((0.8 + 3 * 0.6) / 4)  # first: the batch mean
    ma, info2 = controller.update(ma, actions, [0.2, 0.4])
    assert float(info2["baseline"]) == pytest.approx(0.9 * 0.65 + 0.1 * 0.65)
    _, info3 = controller.update(ma, actions, [0.9, 0.9])
    assert float(info3["baseline"]) == pytest.approx(0.9 * 0.65 + 0.1 * 0.3)
    bm = controller.init(TINY, controller.ControllerConfig(baseline="batch_mean"))
    bm, info = controller.update(bm, actions, [0.8, 0.6])
    assert float(info["baseline"]) == pytest.approx(0.7)
    # the better-than-baseline rollout is raised, the worse one lowered
    p = controller.probabilities(bm)
    assert p[0][0] > 1 / 3 > p[0][2]


def test_padding_rows_and_bucket_do_not_change_the_update():
    state = with_logits(controller.init(TINY, controller.ControllerConfig(baseline="moving_average")), ROWS)
    actions = np.array([[0, 1, 0], [2, 0, 0], [1, 1, 0]])
    rewards = np.array([0.7, 0.5, 0.9])
    a, info_a = controller.update(state, actions, rewards)
    padded = np.concatenate([actions, np.zeros((40, 3), int)])
    b, info_b = controller.update(state, padded, np.concatenate([rewards, np.full(40, 5.0)]),
                                  np.concatenate([np.ones(3), np.zeros(40)]))
    chex.assert_trees_all_close(a, b, rtol=1e-6)
    assert float(info_a["baseline"]) == pytest.approx(float(info_b["baseline"]))
    assert [controller.bucket_size(r, 32) for r in (1, 20, 32, 33, 40, 70)] == [32, 32, 32, 64, 64, 128]
    with pytest.raises(ValueError, match="out of range"):
        controller.update(state, [[0, 2, 0]], [1.0])
    with pytest.raises(ValueError, match="actions"):
        controller.update(state, [[0, 1]], [1.0])
    with pytest.raises(ValueError, match="R >= 1"):
        controller.update(state, np.zeros((0, 3), int), np.zeros(0))
    with pytest.raises(ValueError, match="non-finite"):
        controller.update(state, [[0, 1, 0]], [np.nan])


def test_no_recompilation_within_a_bucket(monkeypatch):
    counted = jax.jit(chex.assert_max_traces(controller._update_impl, n=1))
    monkeypatch.setattr(controller, "_update_step", counted)
    state = controller.init(TINY)
    rng = np.random.default_rng(0)
    for num in (5, 17, 32, 20):
        actions = np.stack([rng.integers(0, n, num) for n in TINY], axis=1)
        state, _ = controller.update(state, actions, rng.uniform(size=num))
    with pytest.raises(AssertionError):  # a new bucket (64) is a second trace: the counter works
        controller.update(state, np.zeros((33, 3), int), np.ones(33))


def test_sampling_frequencies_match_the_softmax():
    state = with_logits(controller.init(TINY), ROWS)
    n = 20000
    actions = np.asarray(controller.sample(jax.random.PRNGKey(0), state, n))
    assert actions.shape == (n, 3) and actions.dtype == np.int32
    for d, p in enumerate(softmax_rows(ROWS)):
        freq = np.bincount(actions[:, d], minlength=3) / n
        np.testing.assert_array_equal(freq[len(p):], 0.0)  # padded choices never drawn
        np.testing.assert_allclose(freq[: len(p)], p, atol=4 * np.sqrt(0.25 / n))
    again = controller.sample(jax.random.PRNGKey(0), state, n)
    np.testing.assert_array_equal(actions, again)


def test_state_round_trips_through_orbax(tmp_path):
    import orbax.checkpoint as ocp

    state = controller.init(TINY)
    state, _ = controller.update(state, [[0, 1, 0], [2, 0, 0]], [0.9, 0.3])
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "ctl", state)
        ckpt.wait_until_finished()
        restored = ckpt.restore(tmp_path / "ctl", controller.init(TINY))
    chex.assert_trees_all_equal(restored, state)
    a, _ = controller.update(state, [[1, 1, 0]], [0.5])
    b, _ = controller.update(restored, [[1, 1, 0]], [0.5])
    chex.assert_trees_all_equal(a, b)


# ------------------------------------------------------------------------------------------------ step size
def bandit_gain(config, seed=0, updates=15, effect=0.03, noise=0.05, space=TABLE_I):
    """Synthetic search: one 'good' choice per decision adds `effect` to an AUC-like reward ~0.8.

    Iteration 0 has 20 rollouts, later ones 30 (the paper's schedule). Returns the mean over decisions
    with several choices of P(good) - 1/num_choices after `updates` updates, and the fraction of
    decisions whose argmax is the good choice.
    """
    rng = np.random.default_rng(seed)
    choices = np.array(space)
    good = rng.integers(0, choices)
    state, key = controller.init(space, config), jax.random.PRNGKey(seed)
    for it in range(updates):
        key, sub = jax.random.split(key)
        actions = np.asarray(controller.sample(sub, state, 20 if it == 0 else 30))
        hits = ((actions == good) - 1.0 / choices).sum(axis=1)
        rewards = np.clip(0.8 + effect * hits + noise * rng.standard_normal(len(actions)), 0.0, 1.0)
        state, _ = controller.update(state, actions, rewards)
    probs = controller.probabilities(state)
    gains = [probs[d][good[d]] - 1.0 / n for d, n in enumerate(space) if n > 1]
    return float(np.mean(gains)), float(np.mean(controller.argmax(state) == good))


def test_default_config_learns_a_bandit_that_the_paper_step_size_does_not():
    default_gain, default_hits = bandit_gain(controller.ControllerConfig())
    paper_gain, _ = bandit_gain(controller.paper_config())
    no_baseline_gain, _ = bandit_gain(controller.ControllerConfig(baseline="none"))
    assert default_gain > 0.1 and default_hits > 0.8
    assert abs(paper_gain) < 0.005
    assert no_baseline_gain < default_gain / 3


def autocp_weight_gain(seed=0, updates=15, effect=0.03, noise=0.05, space=TABLE_I):
    """The same bandit under AutoCP's policy (reference §6.1, §6.6): probabilities w / sum(w), w initialised
    to ones, Adam lr 0.001 on w, no baseline, w renormalised to sum 1 after every update."""
    import optax

    choices = np.array(space)
    mask = jnp.asarray(np.arange(choices.max())[None] < choices[:, None])
    rng = np.random.default_rng(seed)
    good = rng.integers(0, choices)

    def probs(w):
        w = jnp.where(mask, w, 0.0)
        return w / w.sum(axis=1, keepdims=True)

    def loss(w, actions, rewards):
        return -(rewards * jnp.log(probs(w)[jnp.arange(len(space)), actions]).sum(axis=1)).sum()

    opt = optax.adam(controller.PAPER_LEARNING_RATE)
    w = jnp.ones(mask.shape)
    opt_state = opt.init(w)
    for it in range(updates):
        p = np.asarray(probs(w), dtype=np.float64)
        actions = np.stack([rng.choice(p.shape[1], size=20 if it == 0 else 30, p=row / row.sum())
                            for row in p], axis=1)
        hits = ((actions == good) - 1.0 / choices).sum(axis=1)
        rewards = np.clip(0.8 + effect * hits + noise * rng.standard_normal(len(actions)), 0.0, 1.0)
        updates_, opt_state = opt.update(jax.grad(loss)(w, actions, rewards), opt_state)
        w = probs(optax.apply_updates(w, updates_))  # AutoCP's in-place renormalisation (moments kept)
    p = np.asarray(probs(w))
    gains = [p[d, good[d]] - 1.0 / n for d, n in enumerate(space) if n > 1]
    return float(np.mean(gains)), float(np.mean(np.argmax(np.where(mask, w, -1.0), axis=1) == good))


if __name__ == "__main__":
    rows = [("paper: lr 0.001, no baseline", controller.paper_config())]
    rows += [(f"lr {lr}, {baseline}", controller.ControllerConfig(lr=lr, baseline=baseline))
             for lr, baseline in [(0.05, "none"), (0.01, "moving_average"), (0.05, "moving_average"),
                                  (0.1, "moving_average")]]
    print("| controller | P(good) - 1/n after 15 / 50 updates | argmax = good after 15 / 50 |")
    print("|---|---|---|")
    for name, config in rows:
        res = np.array([[bandit_gain(config, seed, updates=u) for u in (15, 50)] for seed in range(5)])
        mean = res.mean(axis=0)
        print(f"| {name} | {mean[0, 0]:+.3f} / {mean[1, 0]:+.3f} | {mean[0, 1]:.2f} / {mean[1, 1]:.2f} |")
    res = np.array([[autocp_weight_gain(seed, updates=u) for u in (15, 50)] for seed in range(5)])
    res = res.mean(axis=0)
    print(f"| AutoCP weights-as-probabilities, renormalised | {res[0, 0]:+.3f} / {res[1, 0]:+.3f} "
          f"| {res[0, 1]:.2f} / {res[1, 1]:.2f} |")
