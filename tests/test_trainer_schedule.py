"""WestTrainer's learning-rate schedule and optimizer groups with a CTC-only warm-up."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from west.config import TrainingArguments
from west.models.build import build_model
from west.trainer import WestTrainer


def _trainer(model_args, tmp_path, **kwargs) -> WestTrainer:
    torch.manual_seed(0)
    config = dataclasses.replace(
        model_args, ctc_weight=1.0, lora_rank=2, encoder_trainable_layers=1
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        learning_rate=1e-3,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        max_steps=30,
        use_cpu=True,
        report_to="none",
        **kwargs,
    )
    trainer = WestTrainer(model=build_model(config), args=args)
    trainer.create_optimizer_and_scheduler(30)
    return trainer


def _lrs(trainer: WestTrainer, steps: int = 30) -> list[list[float]]:
    out = []
    for _ in range(steps):
        out.append(trainer.lr_scheduler.get_last_lr())
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    return out


def test_schedule_runs_again_after_the_ctc_warm_up(model_args, tmp_path):
    lrs = [g[0] for g in _lrs(_trainer(model_args, tmp_path, ctc_only_steps=10))]
    # warm-up phase: 1 warm-up step (10 %), cosine down to ~0 at step 9
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(1e-3)
    assert lrs[9] < 0.05e-3
    # joint phase: 2 warm-up steps, back to the full rate, cosine to ~0
    assert lrs[10] == 0.0 and lrs[12] == pytest.approx(1e-3)
    assert lrs[29] < 0.05e-3 and all(a >= b for a, b in zip(lrs[12:], lrs[13:]))


def test_one_schedule_without_warm_up(model_args, tmp_path):
    lrs = [g[0] for g in _lrs(_trainer(model_args, tmp_path))]
    assert lrs[3] == pytest.approx(1e-3) and all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


def test_lora_and_encoder_blocks_get_their_own_rates(model_args, tmp_path):
    trainer = _trainer(
        model_args, tmp_path, lora_learning_rate=2e-4, encoder_learning_rate=5e-5, max_grad_norm=1.0
    )
    model = trainer.model
    rate = {}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            rate[id(p)] = group["initial_lr"]  # the scheduler scales from it
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        expected = 2e-4 if "lora_" in name else 5e-5 if name.startswith("encoder_top.") else 1e-3
        assert rate[id(p)] == pytest.approx(expected, rel=1e-6), name
