"""Replay memory rules: strict threshold, FIFO eviction, uniform draws without replacement, batch doubling."""

import chex
import jax
import numpy as np
import pytest

from jaxcp.nas import replay


def rollouts(first, num, reward=0.95, width=3):
    """num rollouts whose actions encode their index: row i = [first + i] * width."""
    actions = np.repeat(np.arange(first, first + num)[:, None], width, axis=1)
    return actions, np.full(num, reward)


def ids(actions):
    return sorted(int(a) for a in np.asarray(actions)[:, 0])


def filled(count, capacity=200, batch_size=10):
    memory = replay.init(capacity, 3, batch_size)
    return replay.push(memory, *rollouts(0, count))


def test_init_is_empty_fixed_size():
    memory = replay.init(200, 25)
    chex.assert_shape(memory.actions, (200, 25))
    chex.assert_shape(memory.rewards, (200,))
    assert (int(memory.count), int(memory.next_index), int(memory.batch_size)) == (0, 0, 10)
    assert memory.actions.dtype == np.int32 and memory.rewards.dtype == np.float32
    with pytest.raises(ValueError):
        replay.init(0, 25)


def test_push_keeps_only_rewards_strictly_above_threshold():
    memory = replay.init(200, 3)
    actions, _ = rollouts(0, 6)
    rewards = np.array([0.9, 0.91, 0.5, np.nan, 0.95, 0.99])
    valid = np.array([True, True, True, True, True, False])
    new = replay.push(memory, actions, rewards, threshold=0.9, valid=valid)
    stored_actions, stored_rewards = replay.contents(new)
    assert ids(stored_actions) == [1, 4]
    np.testing.assert_allclose(stored_rewards, [0.91, 0.95], rtol=1e-6)
    assert int(memory.count) == 0 and not memory.actions.any()  # the input memory is unchanged
    assert int(replay.push(memory, actions, rewards, threshold=0.5).count) == 4  # 0.9, 0.91, 0.95, 0.99
    with pytest.raises(ValueError):
        replay.push(memory, actions[:, :2], rewards)


def test_push_evicts_oldest_first_when_full():
    memory = replay.init(5, 3)
    memory = replay.push(memory, *rollouts(0, 3))
    memory = replay.push(memory, *rollouts(3, 4))  # 7 pushed into 5 slots: 0 and 1 evicted
    stored_actions, _ = replay.contents(memory)
    assert [int(a) for a in stored_actions[:, 0]] == [2, 3, 4, 5, 6]
    assert int(memory.count) == 5 and int(memory.next_index) == 2
    memory = replay.push(memory, *rollouts(7, 1))
    assert [int(a) for a in replay.contents(memory)[0][:, 0]] == [3, 4, 5, 6, 7]


def test_draw_returns_everything_when_fewer_than_the_batch():
    memory = filled(4)
    actions, rewards, valid = replay.draw(jax.random.PRNGKey(0), memory)
    assert actions.shape == (10, 3) and valid.tolist() == [True] * 4 + [False] * 6
    assert ids(actions[valid]) == [0, 1, 2, 3]
    np.testing.assert_allclose(rewards[valid], 0.95, rtol=1e-6)
    assert not actions[~valid].any() and not rewards[~valid].any()
    _, _, valid = replay.draw(jax.random.PRNGKey(0), replay.init(200, 3))
    assert not valid.any()


def test_draw_is_without_replacement_uniform_and_only_from_stored_slots():
    memory = replay.init(30, 3, batch_size=5)
    memory = replay.push(memory, *rollouts(100, 40))  # wrapped ring: ids 110..139 stored
    counts = np.zeros(40)
    draws = 3000
    for key in jax.random.split(jax.random.PRNGKey(1), draws):
        actions, _, valid = replay.draw(key, memory)
        drawn = ids(actions[valid])
        assert valid.all() and len(set(drawn)) == 5 and min(drawn) >= 110
        counts[np.array(drawn) - 100] += 1
    # each stored rollout is drawn with probability batch / count = 5 / 30
    freq = counts[10:] / draws
    np.testing.assert_allclose(freq, 5 / 30, atol=4 * np.sqrt((5 / 30) * (25 / 30) / draws))
    first = replay.draw(jax.random.PRNGKey(7), memory)
    chex.assert_trees_all_equal(first, replay.draw(jax.random.PRNGKey(7), memory))


@pytest.mark.parametrize("count,batch,expected", [(0, 10, 10), (19, 10, 10), (20, 10, 20), (80, 10, 20),
                                                  (200, 80, 160), (200, 160, 160)])
def test_batch_doubles_at_most_once_when_memory_holds_twice_the_batch(count, batch, expected):
    memory = filled(count, batch_size=batch)
    assert int(replay.double_batch(memory).batch_size) == expected


def test_sample_draws_with_the_old_batch_then_doubles():
    memory = filled(25)
    actions, rewards, valid, memory = replay.sample(jax.random.PRNGKey(0), memory)
    assert actions.shape == (10, 3) and valid.all() and int(memory.batch_size) == 20
    actions, _, valid, memory = replay.sample(jax.random.PRNGKey(1), memory)
    assert actions.shape == (20, 3) and valid.all() and int(memory.batch_size) == 20


def test_memory_round_trips_through_orbax(tmp_path):
    import orbax.checkpoint as ocp

    memory = replay.push(filled(7, capacity=5), *rollouts(50, 1))
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "replay", memory)
        ckpt.wait_until_finished()
        restored = ckpt.restore(tmp_path / "replay", replay.init(5, 3))
    chex.assert_trees_all_equal(restored, memory)
    key = jax.random.PRNGKey(3)
    chex.assert_trees_all_equal(replay.sample(key, restored), replay.sample(key, memory))
    more = rollouts(60, 2)
    chex.assert_trees_all_equal(replay.push(restored, *more), replay.push(memory, *more))
