#!/usr/bin/env python3
"""Plot the training/eval loss of HF Trainer runs: tools/plot_loss.py RUN_DIR... -o loss.png

A run folder holds ``trainer_state.json`` at its top, or only inside its checkpoints; then the
one of the latest ``checkpoint-<step>/`` is read. Its ``log_history`` is a list of dicts; those
with ``loss`` are training points, those with ``eval_loss`` evaluation points, both at ``step``;
the loss components WeST logs beside the total (``lm_loss``, ``ctc_loss``) are drawn too.
Runs from a checkout too: without an installed ``west`` it uses the one beside this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

try:
    import west  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from west.checkpoint import STATE_NAME as STATE_FILE  # noqa: E402
from west.checkpoint import newest_file  # noqa: E402

PARTS = ("lm_loss", "ctc_loss")


class TrainerStateError(ValueError):
    """A run folder without a readable trainer state; the message names the path."""


@dataclass
class LossCurves:
    """The loss points of one run: ``(step, loss)`` pairs in log order."""

    name: str
    train: list[tuple[int, float]] = field(default_factory=list)
    eval: list[tuple[int, float]] = field(default_factory=list)
    # Loss components WeST logs beside the total (``lm_loss``, ``ctc_loss``).
    parts: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def find_state_file(run_dir: Path) -> Path:
    """``run_dir/trainer_state.json``, else the one in the highest ``checkpoint-N/``."""
    path = newest_file(run_dir, STATE_FILE)
    if path is None:
        raise TrainerStateError(
            f"{run_dir}: no {STATE_FILE}, neither at the top nor in a checkpoint-N/ folder"
        )
    return path


def read_curves(run_dir: str | Path, name: str | None = None) -> LossCurves:
    """The loss curves of a run; ``name`` defaults to the run folder's name."""
    run_dir = Path(run_dir)
    path = find_state_file(run_dir)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TrainerStateError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise TrainerStateError(f"{path}: expected a 'log_history' list")
    curves = LossCurves(name or run_dir.resolve().name)
    for entry in history:
        if not isinstance(entry, dict) or "step" not in entry:
            continue
        if "loss" in entry:
            curves.train.append((int(entry["step"]), float(entry["loss"])))
        if "eval_loss" in entry:
            curves.eval.append((int(entry["step"]), float(entry["eval_loss"])))
        for part in PARTS:
            if part in entry:
                curves.parts.setdefault(part, []).append((int(entry["step"]), float(entry[part])))
    return curves


def plot_losses(runs: Sequence[LossCurves], output: str | Path, title: str = "Loss") -> None:
    """Draw every run's training loss (solid) and eval loss (dashed, same colour) to a file."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        if run.train:
            steps, losses = zip(*run.train)
            ax.plot(steps, losses, color=color, linewidth=1.2, label=f"{run.name} train")
        for part, style in zip(run.parts, (":", "-.")):
            steps, losses = zip(*run.parts[part])
            ax.plot(steps, losses, style, color=color, linewidth=1, label=f"{run.name} {part}")
        if run.eval:
            steps, losses = zip(*run.eval)
            ax.plot(steps, losses, "--", color=color, marker="o", ms=3, label=f"{run.name} eval")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.4)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("-o", "--output", required=True, help="image file to write (e.g. loss.png)")
    p.add_argument("--title", default="Training loss", help="figure title")
    args = p.parse_args(argv)
    try:
        runs = [read_curves(d) for d in args.run_dirs]
    except (TrainerStateError, OSError) as e:
        print(f"plot_loss.py: error: {e}", file=sys.stderr)
        return 1
    for run in runs:
        if not run.train and not run.eval:
            print(f"plot_loss.py: warning: {run.name}: no loss in log_history", file=sys.stderr)
    plot_losses(runs, args.output, title=args.title)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
