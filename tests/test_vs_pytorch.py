"""benchmarks/vs_pytorch.py: the pieces that need no torch, and (with torch and AUTOCP_DIR) the builder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from benchmark_fixtures import benchmark_fixture

from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.model import create_model
from jaxcp.nas.space import load_arch_file

ROOT = Path(__file__).resolve().parents[1]
AUTOCP_DIR = os.environ.get("AUTOCP_DIR")

# AutoCP's `arch_2` decisions in its config's order, with a few of their choices (enough for the best
# architecture's action ids, [3,3,2,2,2,0,1,1,1,1,2,2,0,0,1,1,0,1,2,0] in the reference)
CHOICES = {
    "init_lay": [16, 32, 48, 64, 96], "act": ["relu", "relu6", "hardswish", "swish"],
    "att_lay": ["stja", "ca", "fa", "ja", "pa"], "conv_lay": ["Basic", "Bottleneck", "Sep", "SG", "V3", "Shuffle"],
    "drop_prob": [0, 0.025, 0.05, 0.1], "multi": [False], "expand_ratio": [1, 1.5, 2], "reduct_ratio": [1, 1.5, 2],
    "blocks_in": [1, 2, 3], "depth_in": [1, 2, 3], "stride_in": [1, 2, 3], "scale_in": [0.8, 0.9, 1, 1.1, 1.2],
    "temp_win_in": [3, 5, 7], "graph_dist_in": [1, 2, 3], "blocks_main": [1, 2, 3, 4], "depth_main": [1, 2, 3, 4],
    "stride_main": [1, 2, 3], "scale_main": [0.95, 1, 1.1, 1.2, 1.3], "temp_win_main": [3, 5, 7],
    "graph_dist_main": [1, 2, 3],
}  # fmt: skip
BEST_IDS = [3, 3, 2, 2, 2, 0, 1, 1, 1, 1, 2, 2, 0, 0, 1, 1, 0, 1, 2, 0]

vs = benchmark_fixture("vs_pytorch", "vs")


def test_best_action_ids_decode_to_the_papers_best_arch_file(vs):
    actions = vs.decode(CHOICES, BEST_IDS)
    assert actions["conv_lay"] == "Sep" and actions["init_lay"] == 64 and actions["temp_win_main"] == 7
    assert vs.to_arch(actions) == load_arch_file(ROOT / "configs" / "arch" / "autocp_best.yaml")[0]
    with pytest.raises(ValueError, match="19 action ids for 20 decisions"):
        vs.decode(CHOICES, BEST_IDS[:-1])


def test_log_rows_ceiling_and_ratio(vs, tmp_path):
    log = tmp_path / "action_list.csv"
    log.write_text('7,"[1, 2]","[0, 1]","{\'auc\': 0.5}"\n1003,"[3, 3]","[0, 1, 0]","{\'auc\': 0.9}"\n')
    assert vs.logged_actions(log, 1003) == ([3, 3], [0, 1, 0])
    with pytest.raises(ValueError, match="no student 5"):
        vs.logged_actions(log, 5)
    # 10 windows/s at 2 GFLOP each use 20 of 80 GFLOP/s
    assert vs.ceiling_fraction(10.0, 2e9, 80.0) == pytest.approx(0.25)
    assert vs.ceiling_fraction(10.0, None, 80.0) is None
    assert vs.median_ratio([1.0, 3.0, 2.0], [4.0, 8.0, 6.0]) == pytest.approx(3.0)


def test_without_autocp_dir_it_says_what_is_missing_and_exits_0(vs, capsys):
    assert vs.main(["--autocp-dir", ""]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "AUTOCP_DIR is not set" in out[0] and "nothing measured" in out[0]
    assert "has no src/model/student.py" in vs.missing(str(ROOT))


def test_markdown_table_has_one_row_per_architecture(vs):
    side = {"torch_windows_per_s": 4.0, "jaxcp_windows_per_s": 9.0, "ratio": 2.25, "torch_ceiling_fraction": 0.1,
            "jaxcp_ceiling_fraction": 0.225}
    row = {"arch": "best", "train": side, "infer": side, "peak_rss_torch_bytes": 2e9, "peak_rss_jaxcp_bytes": None,
           "compile_train_step_s": 12.34}
    lines = vs.markdown([row, {**row, "arch": "v3"}]).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| best | 4.00 | 9.00 | 2.25× |")
    assert "| 10% / 22% |" in lines[2] and "| 2.00 / n/a | 12.3 |" in lines[2]


NEEDS_TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None or not AUTOCP_DIR,
                                 reason="needs torch and AUTOCP_DIR (a checkout of the original AutoCP code)")


@NEEDS_TORCH
def test_autocp_students_have_jaxcps_parameter_counts(vs):
    """AutoCP's own Student, built by the benchmark, has exactly the trainable parameter count of jaxcp's
    network for the Arch it maps to (a wiring check, no forward pass; "best" is checked in the next test)."""
    for name in ("multi_gcn", "v3"):
        actions, hyper = vs.architecture(Path(AUTOCP_DIR), name)
        arch = vs.to_arch(actions)
        assert arch.multi_gcn == (name == "multi_gcn") and arch.conv == ("v3" if name == "v3" else "sep")
        assert actions["init_lay"] == arch.init_channels and actions["temp_win_main"] == arch.temporal_window_main
        student = vs.build_torch_student(Path(AUTOCP_DIR), actions, hyper, 12)
        shapes = jax.eval_shape(lambda a=arch: create_model(a, IN_MOTION_29).init(
            jax.random.PRNGKey(0), jnp.zeros((1, 4, 12, 29, 4)), train=False))["params"]
        expected = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes))
        assert sum(p.numel() for p in student.parameters() if p.requires_grad) == expected, name


@NEEDS_TORCH
def test_torch_side_runs_the_student_on_jaxcp_features(vs):
    """The PyTorch side takes the (N, I, T, V, C) features jaxcp uses and returns N probabilities; its
    student has the parameter count of AutoCP's log and `jaxcp complexity` (644,732 with edge importance)."""
    actions, hyper = vs.architecture(Path(AUTOCP_DIR), "best")
    features, labels = vs.batch_data(2, 12)
    _, infer, params = vs.torch_side(Path(AUTOCP_DIR), actions, hyper, features, labels)
    probs = infer()
    assert params == 644_732 and probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))
