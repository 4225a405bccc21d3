"""Bad input, every command: exit status 2, one line naming the file or option, no traceback, and nothing
new or changed on disk (earlier results untouched, no output folder begun, no temporaries left).

The commands run in-process through their `main(argv)`; each case is checked against a snapshot of the
whole working folder taken before it ran.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, WINDOW, cohort

from jaxcp import complexity, evaluate, export, predict, prepare, search, synth, train
from jaxcp.core.config import CONFIG_DIR
from jaxcp.data.dataset import data_settings
from jaxcp.model.checkpoint import save_model
from jaxcp.training.archfile import arch_file_text

COMMANDS = {"prepare": prepare, "synth": synth, "complexity": complexity, "train": train, "search": search,
            "evaluate": evaluate, "predict": predict, "export": export}  # fmt: skip
TEST_SEARCH = str(CONFIG_DIR / "search" / "test.yaml")
QUICK_BEST = str(CONFIG_DIR / "arch" / "quick_best.yaml")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A working folder with earlier results, a model checkpoint, raw recordings and malformed files."""
    root = tmp_path_factory.mktemp("bad")
    data = cohort()
    (root / "results").mkdir()
    (root / "results" / "earlier.txt").write_text("an earlier result\n")
    (root / "file.txt").write_text("a plain file\n")
    (root / "arch.yaml").write_text(arch_file_text(TINY_ARCH, TINY_HPARAMS))
    spec = TINY_CONFIG.model_spec(TINY_ARCH, LAYOUT, data_settings(data))
    variables = spec.network().init(jax.random.PRNGKey(0), np.zeros(spec.input_shape(2), np.float32), train=False)
    save_model(root / "model", variables, spec, hparams=TINY_HPARAMS)
    raw = root / "raw"
    shutil.copytree(data.parent / "raw", raw)
    csv = sorted(raw.glob("orgcoords_*.csv"))[0]
    lines = csv.read_text().splitlines()
    extra, fewer = lines[:], lines[:]
    cells = extra[5].split(",")
    extra[5] = ",".join(cells[:7] + ["0.5"] + cells[7:])  # one cell too many, in the middle of the row
    fewer[9] = ",".join(fewer[9].split(",")[:-1])
    for name, rows in (("extra", extra), ("fewer", fewer)):
        (root / name).mkdir()
        (root / name / "outcomes.csv").write_text(f"id;outcome\n{csv.stem.removeprefix('orgcoords_')};1\n")
        (root / name / csv.name).write_text("\n".join(rows) + "\n")
    (root / "short.csv").write_text("\n".join(lines[: WINDOW // 2]) + "\n")
    (root / "tagged.yaml").write_text("!!python/object:os.system {}\n")
    paper = (CONFIG_DIR / "space" / "tiny.yaml").read_text()
    (root / "space17.yaml").write_text(paper.replace("init_channels: [16]", "init_channels: [17]"))
    (root / "killed").mkdir()  # a search killed before it wrote its config.yaml
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}  # fmt: skip


D = "<data>"  # replaced by the processed cohort's folder
TRAIN = ["--arch", "arch.yaml", "--data", D, "--space", "none", "--epochs", "1", "--set", f"window={WINDOW}",
         "--set", f"hop={WINDOW}", "--set", "features.streams=V"]  # fmt: skip
CASES = [
    # (command, argv, words the one line must hold)
    ("prepare", ["nowhere", "results/new"], "nowhere"),
    ("prepare", ["raw", "file.txt"], "file.txt: exists and is not a directory"),
    ("prepare", ["raw", "file.txt/out"], "file.txt is not a folder"),
    ("prepare", ["extra", "results/new"], "line 6 has 60 cells, the header has 59"),
    ("prepare", ["fewer", "results/new"], "line 10 has 58 cells, the header has 59"),
    ("prepare", ["raw", "results/new", "--set", "preprocess.bogus=1"], "--set: preprocess: unknown key 'bogus'"),
    ("prepare", ["raw", "results/new", "--config", "tagged.yaml"], "tagged.yaml: YAML tags"),
    ("prepare", ["raw", "results/new", "--fps", "fast"], "--fps"),
    ("prepare", ["raw", "results"], "results: exists, is not empty"),
    ("prepare", ["raw", "results/new", "--layout", "file.txt"], "file.txt"),
    ("synth", ["--out", "file.txt"], "file.txt: exists and is not a folder"),
    ("synth", ["--out", "results/new", "--infants", "0"], "infants"),
    ("synth", ["--out", "results/new", "--cp-fraction", "2"], "--cp-fraction 2.0: must be between 0 and 1"),
    ("synth", ["--out", "results/new", "--layout", "bogus"], "bogus"),
    ("complexity", ["--arch", "missing.yaml"], "missing.yaml: file not found"),
    ("complexity", ["--arch", "tagged.yaml"], "tagged.yaml: YAML tags"),
    ("complexity", ["--arch", QUICK_BEST, "--streams", "7", "--no-xla"], "streams must be 1..4"),
    ("complexity", ["--arch", QUICK_BEST, "--frames", "0", "--no-xla"], "frames must be positive"),
    ("complexity", ["--arch", "arch.yaml", "--no-xla"], "arch.yaml: hparams: lr = 0.01 is not in the search space"),
    ("train", ["--arch", "missing.yaml", "--data", D, "--out", "results/run"], "missing.yaml"),
    ("train", ["--arch", "arch.yaml", "--data", "nowhere", "--out", "results/run", "--space", "none"], "nowhere"),
    ("train", [*TRAIN, "--out", "results/run", "--epochs", "-3"], "--epochs -3: must be at least 1"),
    ("train", [*TRAIN, "--out", "results/run", "--set", "window=2000"], "window=2000"),
    ("train", [*TRAIN, "--out", "results/run", "--set", "bogus=1"], "--set: unknown key 'bogus'"),
    ("train", [*TRAIN, "--out", "file.txt"], "file.txt: exists and is not a folder"),
    ("train", [*TRAIN, "--out", "results/run", "--seeds", "0"], "--seeds"),
    ("train", ["--arch", "arch.yaml", "--data", D, "--out", "results/run", "--space", "space17.yaml"],
     "init_channels = 17 is outside the paper's Table I"),
    ("search", ["--config", TEST_SEARCH, "--data", D, "--out", "file.txt"], "file.txt: exists and is not a folder"),
    ("search", ["--resume", "results", "--set", "iterations=3"], "--set cannot be combined with --resume"),
    ("search", ["--resume", "killed"], "run the original command again"),
    ("search", ["--config", TEST_SEARCH, "--data", D, "--out", "results/s", "--set", "student.epoch=3"],
     "--set: student: unknown key 'epoch'"),
    ("search", ["--config", "tagged.yaml", "--out", "results/s"], "tagged.yaml: YAML tags"),
    ("search", ["--config", TEST_SEARCH, "--data", D, "--out", "results/s", "--set", "space=space17.yaml"],
     "init_channels = 17 is outside the paper's Table I"),
    ("search", ["--config", TEST_SEARCH, "--data", "nowhere", "--out", "results/s"], "nowhere"),
    ("evaluate", ["--checkpoint", "model", "--data", D, "--out", "file.txt"], "file.txt: exists and is not a folder"),
    ("evaluate", ["--checkpoint", "model", "--data", "nowhere", "--out", "results/e"], "nowhere"),
    ("evaluate", ["--checkpoint", "model", "--data", D, "--threshold", "2", "--out", "results/e"], "--threshold"),
    ("evaluate", ["--checkpoint", "nowhere", "--data", D, "--out", "results/e"], "nowhere"),
    ("evaluate", ["--checkpoint", "model", "--data", D, "--bootstrap", "0", "--out", "results/e"], "--bootstrap"),
    ("predict", ["--checkpoint", "model", "raw", "--out", "file.txt"], "file.txt: exists and is not a folder"),
    ("predict", ["--checkpoint", "model", "nowhere.csv", "--out", "results/p"], "nowhere.csv"),
    ("predict", ["--checkpoint", "model", "short.csv", "--out", "results/p"], "short.csv"),
    ("predict", ["--checkpoint", "model", "raw", "--threshold", "5", "--out", "results/p"], "--threshold"),
    ("predict", ["--model", "file.txt", "raw", "--out", "results/p"], "file.txt: not a jaxcp export file"),
    ("export", ["--checkpoint", "model", "--out", "results"], "results: is a folder"),
    ("export", ["--checkpoint", "model", "--out", "results/m.jaxcp", "--platforms", "abacus"], "--platforms"),
    ("export", ["--checkpoint", "nowhere", "--out", "results/m.jaxcp"], "nowhere"),
]


@pytest.mark.parametrize(("command", "argv", "words"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_and_changes_nothing(command, argv, words, root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    argv = [str(cohort()) if a == D else a for a in argv]
    before = snapshot(root)
    with pytest.raises(SystemExit) as stop:
        COMMANDS[command].main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err, err
    assert snapshot(root) == before


def test_damaged_checkpoint_is_one_line_even_at_interpreter_exit(root):
    """A checkpoint without its weights: one error line, and no Orbax shutdown noise after it."""
    damaged = root / "damaged"
    if not damaged.exists():
        shutil.copytree(root / "model", damaged)
        shutil.rmtree(damaged / "state")
    recording = sorted((root / "raw").glob("orgcoords_*.csv"))[0]
    proc = subprocess.run([sys.executable, "-m", "jaxcp.predict", "--checkpoint", str(damaged), str(recording),
                           "--out", str(root / "results" / "p")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {damaged}: damaged checkpoint (no state/ folder)"]
    assert not (root / "results" / "p").exists()
