"""The layout of a training run's folder, in one place.

    exp/<run>/
      west_config.json      the model (ModelArguments), written when training starts
      checkpoint-<N>/       model.safetensors, west_config.json, trainer_state.json, ...,
                            and west_complete, written last: a checkpoint without it was
                            killed while being saved and is never used
      model.safetensors     the trained tensors, written when training ends

Plain Python (no torch): the scoring tables and the shell recipes read it too, e.g.

    python -m west.checkpoint exp/run     # prints the newest complete checkpoint-N
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

CONFIG_NAME = "west_config.json"  # the model's settings (west.config.ModelArguments)
WEIGHTS_NAME = "model.safetensors"  # the trained tensors (projector, LoRA, ...)
COMPLETE_MARKER = "west_complete"
STATE_NAME = "trainer_state.json"  # transformers' record of the run: steps, losses
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def checkpoints(run_dir: str | os.PathLike, holding: str | None = None) -> list[Path]:
    """The run's `checkpoint-N` folders, oldest (smallest N) first; with `holding`, only
    those that hold a file of that name."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for d in run_dir.iterdir():
        m = _CHECKPOINT.fullmatch(d.name)
        if m and d.is_dir() and (holding is None or (d / holding).is_file()):
            found.append((int(m.group(1)), d))
    return [d for _, d in sorted(found)]


def newest_checkpoint(run_dir: str | os.PathLike, holding: str = COMPLETE_MARKER) -> Path | None:
    """The newest checkpoint holding `holding` (by default: the newest complete one)."""
    found = checkpoints(run_dir, holding)
    return found[-1] if found else None


def newest_file(run_dir: str | os.PathLike, name: str) -> Path | None:
    """`run_dir/name`, else that file in the newest checkpoint holding it, else None."""
    top = Path(run_dir) / name
    if top.is_file():
        return top
    ckpt = newest_checkpoint(run_dir, holding=name)
    return ckpt / name if ckpt else None


def set_aside_incomplete(run_dir: str | os.PathLike) -> list[Path]:
    """Rename checkpoints without the completion marker to `incomplete-checkpoint-N`, so no
    later search finds them; only the process that resumes training may call this."""
    moved = []
    for d in checkpoints(run_dir):
        if not (d / COMPLETE_MARKER).is_file():
            aside = d.with_name(f"incomplete-{d.name}")
            shutil.rmtree(aside, ignore_errors=True)
            d.rename(aside)
            logger.warning(
                "%s was not completely written (killed while saving?): moved to %s", d, aside
            )
            moved.append(aside)
    return moved


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit(
            "usage: python -m west.checkpoint RUN_DIR  (prints its newest complete checkpoint)"
        )
    ckpt = newest_checkpoint(args[0])
    if ckpt is None:
        sys.exit(f"{args[0]}: no checkpoint-N folder holding {COMPLETE_MARKER}")
    print(ckpt)


if __name__ == "__main__":
    main()
