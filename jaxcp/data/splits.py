"""Infant-level, outcome-stratified, seeded splits and cross-validation folds.

Both functions first sort infants by id, so the result depends on the set of (id, label) pairs and the
seed only, never on file-system or row order. Each class is shuffled on its own with
`np.random.default_rng(seed)`.

Defaults mirror AutoCP's data: 25 % of each class to test (the pool keeps int(n * 0.75), as
MovementOutcome); the pool forms 7 folds and AutoCP validates on 2 of them (`val27`) and trains on the
other 5 (`val13456`), so val = 0.75 * 2/7 = 3/14 (about 0.214) of all infants.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jaxcp.core.errors import InputError
from jaxcp.core.runtime import DEFAULT_SEED

SPLITS = ("train", "val", "test")
DEFAULT_TEST_FRACTION = 0.25
DEFAULT_NUM_FOLDS = 7
DEFAULT_VAL_FRACTION = (1 - DEFAULT_TEST_FRACTION) * 2 / DEFAULT_NUM_FOLDS


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Split settings (`--set split.<name>=value`); fractions are of all infants of each class."""

    test_fraction: float = DEFAULT_TEST_FRACTION
    val_fraction: float = DEFAULT_VAL_FRACTION
    num_folds: int = DEFAULT_NUM_FOLDS
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        for name in ("test_fraction", "val_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise InputError(f"split.{name}: must be in [0, 1), got {value}")
        if self.test_fraction + self.val_fraction >= 1:
            raise InputError(f"split: test_fraction + val_fraction must be < 1, got "
                             f"{self.test_fraction} + {self.val_fraction}")
        if self.num_folds < 2:
            raise InputError(f"split.num_folds: must be >= 2, got {self.num_folds}")


def _sorted_by_class(ids: Sequence[str], labels: Sequence[int]) -> dict[int, list[str]]:
    """{label: ids sorted}, after checking ids are unique and labels are 0/1."""
    ids = [str(i) for i in ids]
    labels = [int(v) for v in np.asarray(labels).ravel()]
    if len(ids) != len(labels):
        raise InputError(f"split: {len(ids)} ids but {len(labels)} labels")
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"split: duplicate id {dup!r}")
    if any(v not in (0, 1) for v in labels):
        raise InputError("split: labels must be 0 or 1")
    by_class: dict[int, list[str]] = {0: [], 1: []}
    for key, label in sorted(zip(ids, labels, strict=True)):
        by_class[label].append(key)
    return by_class


def _split_counts(n: int, test_fraction: float, val_fraction: float) -> tuple[int, int]:
    """(test, val) counts of one class; a class of 3 or more gets at least one of each asked for."""
    num_test = n - int(n * (1 - test_fraction) + 1e-9)
    num_val = int(math.floor(n * val_fraction + 0.5))
    if n >= 3:
        num_test = max(num_test, 1) if test_fraction > 0 else 0
        num_val = max(num_val, 1) if val_fraction > 0 else 0
    num_val = min(num_val, max(n - num_test - 1, 0))
    return num_test, num_val


def stratified_split(
    ids: Sequence[str],
    labels: Sequence[int],
    test_fraction: float = DEFAULT_TEST_FRACTION,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = DEFAULT_SEED,
) -> dict[str, tuple[str, ...]]:
    """{"train", "val", "test"} -> ids (each sorted); every class is split in the same proportions.

    Per class of n infants: test gets n - int(n * (1 - test_fraction)), val round(n * val_fraction),
    train the rest (a class of 3 or more puts at least one infant into val and test when asked to).
    """
    SplitConfig(test_fraction, val_fraction)  # validates the fractions
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    rng = np.random.default_rng(seed)
    for members in _sorted_by_class(ids, labels).values():
        order = [members[i] for i in rng.permutation(len(members))]
        num_test, num_val = _split_counts(len(order), test_fraction, val_fraction)
        out["test"] += order[len(order) - num_test:]
        out["val"] += order[len(order) - num_test - num_val:len(order) - num_test]
        out["train"] += order[:len(order) - num_test - num_val]
    return {name: tuple(sorted(members)) for name, members in out.items()}


def stratified_folds(
    ids: Sequence[str], labels: Sequence[int], num_folds: int = DEFAULT_NUM_FOLDS, seed: int = DEFAULT_SEED
) -> tuple[tuple[str, ...], ...]:
    """`num_folds` disjoint folds (each sorted) covering all ids, stratified by label.

    The shuffled CP infants and then the shuffled non-CP infants are dealt round-robin, so per class and
    in total the fold sizes differ by at most one.
    """
    if num_folds < 2:
        raise InputError(f"split.num_folds: must be >= 2, got {num_folds}")
    rng = np.random.default_rng(seed)
    by_class = _sorted_by_class(ids, labels)
    dealt = [by_class[c][i] for c in (1, 0) for i in rng.permutation(len(by_class[c]))]
    return tuple(tuple(sorted(dealt[k::num_folds])) for k in range(num_folds))


def fold_split(folds: Sequence[Sequence[str]], val_fold: int) -> dict[str, tuple[str, ...]]:
    """Cross-validation split k: {"train": all other folds, "val": fold k} (ids sorted)."""
    if not 0 <= val_fold < len(folds):
        raise InputError(f"fold {val_fold} does not exist (0..{len(folds) - 1})")
    train = [key for k, fold in enumerate(folds) if k != val_fold for key in fold]
    return {"train": tuple(sorted(train)), "val": tuple(sorted(folds[val_fold]))}


# --------------------------------------------------------------------------------------------------------
# How small is too small

MIN_PER_CLASS = 5  # fewer infants of a class than this in a split earns a warning
TARGET_CI_WIDTH = 0.4  # the interval width the warning says how to reach (a proportion near 0.8: +-0.2)


def proportion_ci_width(n: int, p: float = 0.8, alpha: float = 0.05) -> float:
    """Width of the exact (Clopper-Pearson) 1 - alpha interval of a proportion near `p` measured on `n`
    infants (k = round(p n)); 1.0 for n = 0. This is how uncertain a sensitivity or specificity is."""
    from scipy import stats

    if n <= 0:
        return 1.0
    k = int(round(p * n))
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return high - low


def infants_for_width(width: float = TARGET_CI_WIDTH, p: float = 0.8, alpha: float = 0.05) -> int:
    """The fewest infants of a class whose proportion near `p` has an exact interval at most `width` wide."""
    n = 1
    while proportion_ci_width(n, p, alpha) > width:
        n += 1
    return n


def size_warning(what: str, num_positive: int, num_negative: int, minimum: int = MIN_PER_CLASS) -> str | None:
    """One line when `what` (e.g. "split 'val'") has fewer than `minimum` infants of either class, else None.

    It states the counts, how wide a sensitivity / specificity interval is at that size, and how many
    infants per class an interval of TARGET_CI_WIDTH needs."""
    if min(num_positive, num_negative) >= minimum:
        return None
    smaller = min(num_positive, num_negative)
    return (f"{what} has {num_positive} CP and {num_negative} non-CP infants: a sensitivity or specificity "
            f"measured on {smaller} infants has a 95 % interval about {proportion_ci_width(smaller):.2f} wide; "
            f"about {infants_for_width()} infants per class are needed for an interval "
            f"{TARGET_CI_WIDTH:g} wide (+-{TARGET_CI_WIDTH / 2:g})")


# --------------------------------------------------------------------------------------------------------
# Splits fixed by the user

def fixed_split(
    ids: Sequence[str],
    labels: Sequence[int],
    fixed: dict[str, Sequence[str]],
    config: SplitConfig = SplitConfig(),
    sources: dict[str, str] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Like `stratified_split`, but the splits named in `fixed` ("test" and/or "val") hold exactly those ids.

    The other infants are split as usual (stratified, seeded), keeping the default proportions among the
    splits that are drawn: with a fixed test split, val gets val_fraction / (1 - test_fraction) of each
    class of the rest; with a fixed val split, test gets test_fraction / (1 - val_fraction). Every fixed id
    must be one of `ids`, and no id may be fixed twice: an InputError naming `sources[split]` (the id file).
    """
    sources = sources or {}
    known = set(str(i) for i in ids)
    taken: dict[str, str] = {}
    for name in ("test", "val"):
        for key in fixed.get(name, ()):
            if key not in known:
                raise InputError(f"{sources.get(name, name + ' ids')}: id {key!r} is not in the cohort "
                                 f"(no usable, labelled recording with that id)")
            if taken.get(key, name) != name:
                other = sources.get(taken[key], taken[key] + " ids")
                raise InputError(f"{sources.get(name, name + ' ids')}: id {key!r} is also in {other}; an "
                                 f"infant can be in one split only")
            taken[key] = name
    rest = [(str(i), int(y)) for i, y in zip(ids, labels, strict=True) if str(i) not in taken]
    rest_ids, rest_labels = [i for i, _ in rest], [y for _, y in rest]
    if "test" in fixed and "val" in fixed:
        drawn = {"train": tuple(sorted(rest_ids)), "val": (), "test": ()}
    elif "test" in fixed:
        fraction = min(config.val_fraction / (1 - config.test_fraction), 0.999)
        drawn = stratified_split(rest_ids, rest_labels, 0.0, fraction, config.seed)
    else:
        fraction = min(config.test_fraction / (1 - config.val_fraction), 0.999)
        drawn = stratified_split(rest_ids, rest_labels, fraction, 0.0, config.seed)
    out = {name: list(drawn[name]) for name in SPLITS}
    for key, name in taken.items():
        out[name].append(key)
    return {name: tuple(sorted(members)) for name, members in out.items()}
