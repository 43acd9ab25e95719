"""tools/plot_loss.py: loss curves from HF Trainer state files, drawn to a PNG."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("plot_loss", REPO / "tools" / "plot_loss.py")
plot_loss = sys.modules["plot_loss"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_loss)
TrainerStateError, find_state_file, read_curves = (
    plot_loss.TrainerStateError,
    plot_loss.find_state_file,
    plot_loss.read_curves,
)


def write_state(path, history):
    path.mkdir(parents=True, exist_ok=True)
    (path / "trainer_state.json").write_text(json.dumps({"log_history": history}))


HISTORY = [
    {"step": 10, "loss": 3.0, "learning_rate": 1e-4},
    {"step": 20, "loss": 2.5},
    {"step": 20, "eval_loss": 2.8, "eval_runtime": 1.0},
    {"step": 30, "loss": 2.1},
    {"train_runtime": 100.0},  # the final summary has no step
]


def test_read_curves_splits_train_and_eval(tmp_path):
    write_state(tmp_path / "run", HISTORY)
    curves = read_curves(tmp_path / "run")
    assert curves.name == "run"
    assert curves.train == [(10, 3.0), (20, 2.5), (30, 2.1)]
    assert curves.eval == [(20, 2.8)]


def test_latest_checkpoint_is_used_when_top_has_none(tmp_path):
    write_state(tmp_path / "run" / "checkpoint-200", HISTORY[:1])
    write_state(tmp_path / "run" / "checkpoint-1000", HISTORY)
    write_state(tmp_path / "run" / "checkpoint-final", [])  # not a numbered checkpoint
    assert find_state_file(tmp_path / "run").parent.name == "checkpoint-1000"
    assert len(read_curves(tmp_path / "run").train) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainerStateError, match="empty: no trainer_state.json"):
        read_curves(tmp_path / "empty")


def test_plot_writes_png(tmp_path):
    write_state(tmp_path / "qwen2-1.5b", HISTORY)
    write_state(tmp_path / "qwen2-7b" / "checkpoint-30", HISTORY[:2])
    out = tmp_path / "loss.png"
    runs = [str(tmp_path / "qwen2-1.5b"), str(tmp_path / "qwen2-7b")]
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "plot_loss.py"), *runs, "-o", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_loss_components_are_read_and_drawn(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    history = [
        {"step": 10, "loss": 7.0, "ctc_loss": 7.0},
        {"step": 20, "loss": 5.0, "ctc_loss": 2.0, "lm_loss": 3.0},
    ]
    (run / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    curves = read_curves(run)
    assert curves.parts == {"ctc_loss": [(10, 7.0), (20, 2.0)], "lm_loss": [(20, 3.0)]}
    out = tmp_path / "loss.png"
    plot_loss.plot_losses([curves], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
