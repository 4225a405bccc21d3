"""Search space, Arch/HParams specs, encode/decode, sampling and arch files."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxcp.core.errors import InputError
from jaxcp.data.features import FeatureConfig
from jaxcp.model.arch import ARCH_DECISIONS
from jaxcp.nas.space import (
    DEFAULT_SPACE,
    ArchFile,
    arch_file_text,
    load_arch_file,
    load_space,
    read_arch,
    read_arch_spec,
)
from jaxcp.training.archfile import parse_arch_file
from jaxcp.training.hparams import HPARAM_DECISIONS, HParams

BEST_FILE = DEFAULT_SPACE.parents[1] / "arch" / "autocp_best.yaml"

# Table I / AutoCP's config, in decision order (multi_gcn has [true, false] here, [False] in the code).
PAPER_CHOICES = {
    "init_channels": [16, 32, 48, 64, 96],
    "activation": ["relu", "relu6", "hardswish", "swish"],
    "attention": ["stja", "ca", "fa", "ja", "pa"],
    "conv": ["basic", "bottleneck", "sep", "sg", "v3", "shuffle"],
    "dropout": [0, 0.025, 0.05, 0.1],
    "multi_gcn": [True, False],
    "expand_ratio": [1, 1.5, 2],
    "reduct_ratio": [1, 1.5, 2],
    "blocks_in": [1, 2, 3],
    "depth_in": [1, 2, 3],
    "stride_in": [1, 2, 3],
    "scale_in": [0.8, 0.9, 1, 1.1, 1.2],
    "temporal_window_in": [3, 5, 7],
    "graph_distance_in": [1, 2, 3],
    "blocks_main": [1, 2, 3, 4],
    "depth_main": [1, 2, 3, 4],
    "stride_main": [1, 2, 3],
    "scale_main": [0.95, 1, 1.1, 1.2, 1.3],
    "temporal_window_main": [3, 5, 7],
    "graph_distance_main": [1, 2, 3],
    "lr": [0.005, 0.001, 0.0005],
    "optimizer": ["sgd", "adam", "adamw"],
    "weight_decay": [0.0, 0.01, 0.001, 0.0001],
    "momentum": [0.5, 0.9, 0.99],
    "batch_size": [24, 32, 40],
}


@pytest.fixture(scope="module")
def space():
    return load_space()


def test_space_file_holds_table_one_in_order(space):
    assert space.names == tuple(PAPER_CHOICES)
    for d in space.decisions:
        assert list(d.choices) == PAPER_CHOICES[d.name], d.name
    assert len(space.arch) == 20 and len(space.hparams) == 5
    assert space.num_choices == tuple(len(v) for v in PAPER_CHOICES.values())
    # AutoCP's log: "Search Space size: 89" with multi [False]; one more option with [true, false].
    assert space.num_options == 89 + 1
    assert space.size == int(np.prod([len(v) for v in PAPER_CHOICES.values()]))


def test_best_file_is_the_paper_best_and_decodes_from_its_action_ids(space):
    arch, hp = load_arch_file(BEST_FILE)
    # AutoCP's action ids of argmax_1003 (reference §5.2); multi_gcn False is index 1 in our [true, false].
    ids = [3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 2, 2, 0, 0, 1, 1, 0, 1, 2, 0] + [0, 1, 0, 2, 1]
    assert space.decode(ids) == (arch, hp)
    assert space.encode(arch, hp) == tuple(ids)
    assert (arch.init_channels, arch.conv, arch.attention, arch.activation) == (64, "sep", "fa", "swish")
    assert (arch.stride_in, arch.blocks_main, arch.temporal_window_main) == (3, 2, 7)
    assert hp == HParams(optimizer="adam", lr=0.005, weight_decay=0.0, momentum=0.99, batch_size=32)


def test_decode_encode_round_trip_on_samples(space):
    samples = np.asarray(space.sample_many(jax.random.key(0), 200))
    for row in samples:
        arch, hp = space.decode(row)
        assert space.encode(arch, hp) == tuple(int(i) for i in row)
        for d, i in zip(space.decisions, row, strict=True):
            obj = arch if d.name in ARCH_DECISIONS else hp
            assert getattr(obj, d.name) == d.choices[i]


def test_decode_sets_variant_and_rejects_bad_indices(space):
    ids = [0] * len(space.decisions)
    assert space.decode(ids, variant="corrected")[0].variant == "corrected"
    assert space.decode(ids)[0].variant == "autocp"
    with pytest.raises(InputError, match="expected 25 indices"):
        space.decode(ids[:-1])
    bad = list(ids)
    bad[3] = 6
    with pytest.raises(InputError, match="conv"):
        space.decode(bad)
    bad[3] = -1
    with pytest.raises(InputError, match="conv"):
        space.decode(bad)


def test_sampling_is_uniform_per_decision_and_reproducible(space):
    n = 6000
    samples = np.asarray(space.sample_many(jax.random.key(1), n))
    assert samples.shape == (n, 25) and samples.dtype == np.int32
    for j, k in enumerate(space.num_choices):
        counts = np.bincount(samples[:, j], minlength=k)
        assert len(counts) == k, space.names[j]
        # 5 standard deviations of a binomial count around n / k
        sd = np.sqrt(n * (1 / k) * (1 - 1 / k))
        assert np.all(np.abs(counts - n / k) < 5 * sd), (space.names[j], counts)
    one = space.sample(jax.random.key(2))
    assert one.shape == (25,)
    np.testing.assert_array_equal(one, space.sample(jax.random.key(2)))
    np.testing.assert_array_equal(jax.jit(space.sample)(jax.random.key(2)), one)
    assert np.all(np.asarray(one) < np.asarray(space.num_choices))


def test_arch_is_hashable_normalises_names_and_types():
    arch, _ = load_arch_file(BEST_FILE)
    same = dataclasses.replace(arch, conv="Sep", expand_ratio=1.5, scale_in=1)
    assert same == arch and hash(same) == hash(arch)
    assert same.conv == "sep" and isinstance(same.scale_in, float)
    assert {arch: 1}[same] == 1
    assert HParams(optimizer="AdamW", lr=1, weight_decay=0, momentum=0.9, batch_size=8).optimizer == "adamw"
    assert dataclasses.replace(arch, variant="corrected") != arch


@pytest.mark.parametrize("field, value, message", [
    ("conv", "dense", "conv must be one of"),
    ("activation", "gelu", "activation must be one of"),
    ("attention", "full", "attention must be one of"),
    ("temporal_window_in", 4, "odd"),
    ("graph_distance_main", 4, "1..3"),
    ("init_channels", 0, "positive"),
    ("init_channels", True, "integer"),
    ("blocks_in", 1.5, "integer"),
    ("dropout", 1.0, r"\[0, 1\)"),
    ("multi_gcn", 1, "true or false"),
    ("variant", "fixed", "variant"),
])
def test_arch_rejects_invalid_values(field, value, message):
    arch, _ = load_arch_file(BEST_FILE)
    with pytest.raises(InputError, match=message):
        dataclasses.replace(arch, **{field: value})


def test_validate_names_the_field_outside_the_space(space):
    arch, hp = load_arch_file(BEST_FILE)
    space.validate(arch, hp)
    with pytest.raises(InputError, match=r"init_channels = 8 is not in the search space"):
        space.validate(dataclasses.replace(arch, init_channels=8))
    with pytest.raises(InputError, match="batch_size"):
        space.validate(arch, dataclasses.replace(hp, batch_size=16))
    with pytest.raises(InputError, match="scale_main"):
        space.encode(dataclasses.replace(arch, scale_main=0.5), hp)


def test_arch_file_round_trip(tmp_path, space):
    arch, hp = space.decode(np.asarray(space.sample(jax.random.key(3))), variant="corrected")
    path = tmp_path / "arch.yaml"
    path.write_text(arch_file_text(arch, hp))
    assert load_arch_file(path) == (arch, hp)


def test_arch_file_accepts_reference_spelling(tmp_path):
    text = BEST_FILE.read_text().replace("conv: sep", "conv: Sep")
    text = text.replace("optimizer: adam", "optimizer: Adam")
    path = tmp_path / "a.yaml"
    path.write_text(text)
    assert load_arch_file(path) == load_arch_file(BEST_FILE)


@pytest.mark.parametrize("edit, message", [
    (("conv: sep", "conv: dense"), "conv must be one of"),
    (("init_channels: 64", "init_channels: 65"), "arch: init_channels = 65 is not in the search space"),
    (("batch_size: 32", "batch_size: 33"), "hparams: batch_size = 33"),
    (("  dropout: 0.05\n", "  dropout: 0.05\n  width: 3\n"), r"arch\.width: unknown key"),
    (("  dropout: 0.05\n", ""), r"arch\.dropout: missing key"),
    (("hparams:", "hyper:"), "unknown section 'hyper'"),
    (("multi_gcn: false", "multi_gcn: no_way"), "multi_gcn must be true or false"),
])
def test_arch_file_errors_name_file_and_key(tmp_path, edit, message):
    text = BEST_FILE.read_text()
    assert edit[0] in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError, match=message) as info:
        load_arch_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("edit, message", [
    (("  conv: [basic,", "  convolution: [basic,"), "unknown key"),
    (("[relu, relu6, hardswish, swish]", "[relu, relu]"), "duplicate"),
    (("[relu, relu6, hardswish, swish]", "[relu, tanh]"), "activation must be one of"),
    (("[3, 5, 7]", "[3, 4]"), "odd"),
    (("batch_size: [24, 32, 40]", "batch_size: []"), "non-empty list"),
])
def test_space_file_errors(tmp_path, edit, message):
    text = DEFAULT_SPACE.read_text()
    assert edit[0] in text
    path = tmp_path / "space.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError, match=message) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_a_reordered_space_changes_indices_not_values(tmp_path):
    text = DEFAULT_SPACE.read_text().replace("multi_gcn: [true, false]", "multi_gcn: [false, true]")
    path = tmp_path / "space.yaml"
    path.write_text(text)
    swapped, default = load_space(path), load_space()
    arch, hp = load_arch_file(BEST_FILE)
    i = default.names.index("multi_gcn")
    assert default.encode(arch, hp)[i] == 1 and swapped.encode(arch, hp)[i] == 0
    assert swapped.decode(swapped.encode(arch, hp)) == (arch, hp)
    assert set(HPARAM_DECISIONS) == {d.name for d in default.hparams}


def test_choices_come_from_the_model_and_optimizer_tables():
    """The fields' allowed names are the model's and the optimizer's own tables; the paper's space searches
    every layer type the model implements."""
    from jaxcp.model.arch import ACTIVATIONS, ATTENTIONS, CONVS
    from jaxcp.model.attention import ATTENTION_LAYERS
    from jaxcp.model.ops import ACTIVATION_FNS
    from jaxcp.model.temporal import TEMPORAL_LAYERS
    from jaxcp.training.optim import OPTIMIZERS

    assert (CONVS, ATTENTIONS, ACTIVATIONS) == (tuple(TEMPORAL_LAYERS), tuple(ATTENTION_LAYERS),
                                                tuple(ACTIVATION_FNS))
    paper = {d.name: set(d.choices) for d in load_space().decisions}
    assert paper["conv"] == set(CONVS) and paper["attention"] == set(ATTENTIONS)
    assert paper["activation"] == set(ACTIVATIONS) and paper["optimizer"] == set(OPTIMIZERS)


# --------------------------------------------------------------------------------------------------------
# Arch files carry the input the candidate was found with

FOUND_WITH = FeatureConfig(streams="VA", relative_joint=2, filter_order=4, filter_cutoff=0.25, use_filter=False)


def test_arch_file_input_settings_round_trip(tmp_path, space):
    arch, hp = load_arch_file(BEST_FILE)
    path = tmp_path / "arch.yaml"
    path.write_text(arch_file_text(arch, hp, FOUND_WITH, window=90, hop=45))
    assert parse_arch_file(path) == ArchFile(arch, hp, FOUND_WITH, 90, 45)
    assert read_arch_spec(path, "autocp") == ArchFile(arch, hp, FOUND_WITH, 90, 45)
    assert load_arch_file(path) == read_arch(path, "none") == (arch, hp)  # the candidate alone, as before
    assert parse_arch_file(path).input_settings() == {
        "features": {"streams": "VA", "relative_joint": 2, "filter_order": 4, "filter_cutoff": 0.25,
                     "use_filter": False}, "window": 90, "hop": 45}  # fmt: skip
    # without them: nothing, as before (the paper's file has none)
    assert parse_arch_file(BEST_FILE) == ArchFile(arch, hp)
    assert parse_arch_file(BEST_FILE).input_settings() == {}
    assert "features" not in arch_file_text(arch, hp)
    partial = tmp_path / "partial.yaml"
    partial.write_text(BEST_FILE.read_text() + "features:\n  streams: J\n")
    assert parse_arch_file(partial).features == FeatureConfig(streams="J")  # the rest: the defaults
    assert parse_arch_file(partial).window is None


@pytest.mark.parametrize("block, message", [
    ("features:\n  streams: XY\n", "features.streams 'XY'"),
    ("features:\n  width: 3\n", "features: unknown key 'width'"),
    ("features:\n  use_filter: maybe\n", "features: use_filter: expected true or false"),
    ("features: V\n", "features must be a mapping"),
    ("window: 2\n", "window must be an integer >= 3"),
    ("hop: 1.5\n", "hop must be an integer >= 1"),
    ("inputs:\n  window: 90\n", "unknown section 'inputs'"),
])
def test_arch_file_bad_input_settings_name_the_file(tmp_path, block, message):
    path = tmp_path / "bad.yaml"
    path.write_text(BEST_FILE.read_text() + block)
    with pytest.raises(InputError, match=message) as info:
        read_arch_spec(path, "none")
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_train_uses_the_arch_file_settings_and_set_overrides_them(tmp_path, monkeypatch):
    """`jaxcp train`'s request (what its run folder's config.yaml shows) starts from the arch file's
    features, window and hop; `--set` overrides them; a file without them keeps the defaults."""
    from jaxcp import train
    from jaxcp.training.students import LONG_SCHEDULE

    requests = []
    monkeypatch.setattr(train, "train_run", lambda request, out, **kwargs: requests.append(request) or
                        {"epochs": 0, "seconds_compile": 0, "seconds_train": 0, "seconds_eval": 0, "seeds": []})
    arch, hp = load_arch_file(BEST_FILE)
    path = tmp_path / "arch.yaml"
    path.write_text(arch_file_text(arch, hp, FOUND_WITH, window=90, hop=45))
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--epochs", "2"]
    assert train.main(["--arch", str(path), *base]) == 0
    assert train.main(["--arch", str(path), *base, "--set", "features.streams=J", "--set", "window=60"]) == 0
    assert train.main(["--arch", str(BEST_FILE), *base]) == 0
    found, overridden, plain = (r.config for r in requests)
    assert (found.features, found.window, found.hop, found.epochs) == (FOUND_WITH, 90, 45, 2)
    assert overridden.features == dataclasses.replace(FOUND_WITH, streams="J")  # the file's other settings stay
    assert (overridden.window, overridden.hop) == (60, 45)
    assert (plain.features, plain.window, plain.hop) == (LONG_SCHEDULE.features, LONG_SCHEDULE.window,
                                                         LONG_SCHEDULE.hop)  # fmt: skip
