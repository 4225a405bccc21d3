"""Infant-level stratified splits and cross-validation folds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxcp.core.errors import InputError
from jaxcp.data.splits import (
    DEFAULT_VAL_FRACTION,
    SplitConfig,
    fixed_split,
    fold_split,
    stratified_folds,
    stratified_split,
)


def cohort(num_positive: int, num_negative: int) -> tuple[list[str], list[int]]:
    ids = [f"p{i:03d}" for i in range(num_positive)] + [f"n{i:03d}" for i in range(num_negative)]
    return ids, [1] * num_positive + [0] * num_negative


def counts(members, labels_by_id) -> tuple[int, int]:
    positives = sum(labels_by_id[m] for m in members)
    return positives, len(members) - positives


def test_default_val_fraction_is_two_of_seven_folds_of_the_pool():
    assert DEFAULT_VAL_FRACTION == pytest.approx(0.75 * 2 / 7)
    assert SplitConfig().test_fraction == 0.25 and SplitConfig().num_folds == 7


def test_split_sizes_per_class_by_hand():
    # 78 CP: test 78 - int(58.5) = 20, val round(78 * 3/14 = 16.7) = 17, train 41;
    # 479 non-CP: test 479 - int(359.25) = 120, val round(102.6) = 103, train 256.
    ids, labels = cohort(78, 479)
    split = stratified_split(ids, labels)
    by_id = dict(zip(ids, labels, strict=True))
    assert counts(split["test"], by_id) == (20, 120)
    assert counts(split["val"], by_id) == (17, 103)
    assert counts(split["train"], by_id) == (41, 256)


def test_split_is_a_partition_sorted_and_seeded():
    ids, labels = cohort(30, 100)
    split = stratified_split(ids, labels, seed=5)
    members = [m for name in ("train", "val", "test") for m in split[name]]
    assert sorted(members) == sorted(ids) and len(set(members)) == len(ids)
    assert all(list(split[name]) == sorted(split[name]) for name in split)
    assert stratified_split(ids, labels, seed=5) == split
    assert stratified_split(ids, labels, seed=6) != split


def test_split_does_not_depend_on_input_order():
    ids, labels = cohort(12, 40)
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled = stratified_split([ids[i] for i in order], [labels[i] for i in order], seed=3)
    assert shuffled == stratified_split(ids, labels, seed=3)


def test_split_draws_are_spread_over_seeds():
    # every infant lands in test for some seeds: the split is a random draw, not a fixed slice
    ids, labels = cohort(4, 16)
    in_test = {i: 0 for i in ids}
    for seed in range(60):
        for m in stratified_split(ids, labels, seed=seed)["test"]:
            in_test[m] += 1
    assert min(in_test.values()) > 0
    assert sum(in_test.values()) == 60 * 5  # 1 CP + 4 non-CP per draw


def test_small_classes_still_reach_every_split():
    ids, labels = cohort(3, 5)
    split = stratified_split(ids, labels)
    by_id = dict(zip(ids, labels, strict=True))
    for name in ("train", "val", "test"):
        assert counts(split[name], by_id)[0] == 1  # one CP infant each
    one = stratified_split(["a", "b"], [1, 0])
    assert sorted(one["test"]) == ["a", "b"]  # a class of one goes to test


def test_split_without_val_or_test():
    ids, labels = cohort(5, 10)
    split = stratified_split(ids, labels, test_fraction=0.0, val_fraction=0.0)
    assert split["val"] == () and split["test"] == () and len(split["train"]) == 15


@pytest.mark.parametrize(
    "args, message",
    [
        ((["a", "a"], [0, 1]), "duplicate id 'a'"),
        ((["a", "b"], [0, 2]), "labels must be 0 or 1"),
        ((["a", "b"], [0]), "2 ids but 1 labels"),
    ],
)
def test_split_bad_input(args, message):
    with pytest.raises(InputError, match=message):
        stratified_split(*args)
    with pytest.raises(InputError, match=message):
        stratified_folds(*args)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(test_fraction=1.0), "split.test_fraction: must be in \\[0, 1\\)"),
        (dict(val_fraction=-0.1), "split.val_fraction"),
        (dict(test_fraction=0.6, val_fraction=0.4), "test_fraction \\+ val_fraction must be < 1"),
        (dict(num_folds=1), "split.num_folds: must be >= 2"),
    ],
)
def test_split_config_validation(changes, message):
    with pytest.raises(InputError, match=message):
        SplitConfig(**changes)


# --------------------------------------------------------------------------------------------------------
# Folds

@pytest.mark.parametrize("num_positive, num_negative, k", [(18, 102, 7), (5, 9, 3), (1, 3, 4)])
def test_folds_partition_and_are_stratified(num_positive, num_negative, k):
    ids, labels = cohort(num_positive, num_negative)
    by_id = dict(zip(ids, labels, strict=True))
    folds = stratified_folds(ids, labels, k, seed=1)
    assert len(folds) == k
    assert sorted(m for fold in folds for m in fold) == sorted(ids)
    sizes = [len(f) for f in folds]
    positives = [counts(f, by_id)[0] for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert max(positives) - min(positives) <= 1
    assert sum(positives) == num_positive
    assert min(positives) == math.floor(num_positive / k)


def test_folds_seeded_and_order_free():
    ids, labels = cohort(10, 30)
    folds = stratified_folds(ids, labels, 5, seed=2)
    assert stratified_folds(ids[::-1], labels[::-1], 5, seed=2) == folds
    assert stratified_folds(ids, labels, 5, seed=3) != folds


def test_fold_split():
    folds = (("a", "b"), ("c",), ("d", "e"))
    assert fold_split(folds, 1) == {"train": ("a", "b", "d", "e"), "val": ("c",)}
    with pytest.raises(InputError, match="fold 3 does not exist"):
        fold_split(folds, 3)
    with pytest.raises(InputError, match="split.num_folds"):
        stratified_folds(["a"], [1], 1)


def test_small_split_warning_states_counts_and_interval_width():
    from jaxcp.data.splits import infants_for_width, proportion_ci_width, size_warning

    # 2 infants, proportion 0.8 -> k = 2 of 2: the exact interval is [0.025 ** (1/2), 1] (Beta(2, 1) cdf = x^2)
    assert proportion_ci_width(2) == pytest.approx(1 - math.sqrt(0.025))
    assert proportion_ci_width(0) == 1.0
    n = infants_for_width(0.4)
    assert proportion_ci_width(n) <= 0.4 < proportion_ci_width(n - 1)
    text = size_warning("split 'val'", 2, 7)
    assert "2 CP and 7 non-CP" in text and f"{proportion_ci_width(2):.2f}" in text and f"about {n} " in text
    assert size_warning("split 'val'", 5, 5) is None


# --------------------------------------------------------------------------------------------------------
# Splits fixed by id files

def test_fixed_test_split_and_the_rest_split_as_usual():
    ids, labels = cohort(10, 30)
    by_id = dict(zip(ids, labels, strict=True))
    test = ("p000", "n005", "n006")
    split = fixed_split(ids, labels, {"test": test}, SplitConfig(seed=4))
    assert split["test"] == tuple(sorted(test))
    rest = [i for i in ids if i not in test]
    # the rest: val gets val_fraction / (1 - test_fraction) = 2/7 of each class, drawn with the seed
    expected = stratified_split(rest, [by_id[i] for i in rest], 0.0, DEFAULT_VAL_FRACTION / 0.75, seed=4)
    assert split["val"] == expected["val"] and split["train"] == expected["train"]
    assert counts(split["val"], by_id) == (round(9 * 2 / 7), round(27 * 2 / 7))


def test_fixed_val_and_both_fixed():
    ids, labels = cohort(6, 14)
    by_id = dict(zip(ids, labels, strict=True))
    split = fixed_split(ids, labels, {"val": ("p001", "n002")}, SplitConfig(seed=1))
    assert split["val"] == ("n002", "p001")
    rest = [i for i in ids if i not in ("p001", "n002")]
    fraction = 0.25 / (1 - DEFAULT_VAL_FRACTION)
    assert split["test"] == stratified_split(rest, [by_id[i] for i in rest], fraction, 0.0, seed=1)["test"]
    both = fixed_split(ids, labels, {"test": ("p000",), "val": ("n000", "n001")})
    assert both == {"train": tuple(sorted(set(ids) - {"p000", "n000", "n001"})), "val": ("n000", "n001"),
                    "test": ("p000",)}


def test_fixed_split_bad_ids_name_the_file():
    ids, labels = cohort(3, 5)
    with pytest.raises(InputError, match="^test.txt: id 'x9' is not in the cohort"):
        fixed_split(ids, labels, {"test": ("p000", "x9")}, sources={"test": "test.txt"})
    with pytest.raises(InputError, match="^val.txt: id 'p000' is also in test.txt"):
        fixed_split(ids, labels, {"test": ("p000",), "val": ("p000",)}, sources={"test": "test.txt",
                                                                                  "val": "val.txt"})
