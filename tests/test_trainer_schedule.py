"""WestTrainer's learning-rate schedule and optimizer groups with a CTC-only warm-up."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from west.config import TrainingArguments
from west.models.build import build_model
from west.trainer import WestTrainer


def _trainer(model_args, tmp_path, lora_rank=2, **kwargs) -> WestTrainer:
    torch.manual_seed(0)
    config = dataclasses.replace(
        model_args, ctc_conf={"weight": 1.0}, lora_rank=lora_rank, encoder_trainable_layers=1
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


def _lrs(trainer: WestTrainer, steps: int = 30) -> dict[str, list[float]]:
    """Learning rate of each part ("speech", "llm") at each step."""
    parts = [g["west_part"] for g in trainer.optimizer.param_groups]
    out: dict[str, list[float]] = {p: [] for p in parts}
    for _ in range(steps):
        for part, lr in zip(parts, trainer.lr_scheduler.get_last_lr()):
            out[part].append(lr)  # groups of one part share a schedule (rates may differ)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    return out


def _falls(lrs: list[float]) -> bool:
    return all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_each_part_gets_the_schedule_over_its_own_steps(model_args, tmp_path):
    lrs = _lrs(_trainer(model_args, tmp_path, ctc_only_steps=10))
    speech, llm = lrs["speech"], lrs["llm"]
    # speech side, warm-up phase: 1 warm-up step (10 %), cosine down to ~0 at step 9
    assert speech[0] == 0.0 and max(speech[:10]) > 0 and speech[9] < 0.05 * max(speech[:10])
    # then again over the joint phase: 2 warm-up steps, back to the full rate, cosine to ~0
    assert speech[10] == 0.0 and speech[12] == pytest.approx(max(speech[:10]))
    assert _falls(speech[12:]) and speech[29] < 0.05 * speech[12]
    # LoRA: nothing before the joint phase, then the full schedule
    assert llm[:11] == [0.0] * 11 and llm[12] == pytest.approx(1e-3) and _falls(llm[12:])


def test_each_part_learning_rate_is_logged(model_args, tmp_path):
    trainer = _trainer(model_args, tmp_path, ctc_only_steps=10, joint_speech_training=False)
    _lrs(trainer, 15)  # into the LLM stage: the speech side is fixed, LoRA is training
    logs = {"loss": 1.0, "learning_rate": trainer.lr_scheduler.get_last_lr()[0]}
    trainer.log(logs)
    assert logs["learning_rate_speech"] == 0.0 and logs["learning_rate_llm"] > 0
    assert trainer.state.log_history[-1]["learning_rate_llm"] == logs["learning_rate_llm"]
    speech_only = _trainer(model_args, tmp_path, lora_rank=0)
    assert speech_only.part_learning_rates() == {}  # one part: HF's learning_rate says it all


def test_speech_side_fixed_after_its_warm_up(model_args, tmp_path):
    trainer = _trainer(model_args, tmp_path, ctc_only_steps=10, joint_speech_training=False)
    lrs = _lrs(trainer)
    assert max(lrs["speech"][:10]) > 0 and lrs["speech"][10:] == [0.0] * 20
    assert lrs["llm"][:11] == [0.0] * 11 and lrs["llm"][12] == pytest.approx(1e-3)


def test_speech_side_fixed_throughout_without_warm_up(model_args, tmp_path):
    """No CTC-only steps and joint_speech_training False: an LLM stage on a loaded speech
    side, which keeps its weights; without LoRA the speech side is all there is to train."""
    lrs = _lrs(_trainer(model_args, tmp_path, joint_speech_training=False))
    assert lrs["speech"] == [0.0] * 30
    assert lrs["llm"][3] == pytest.approx(1e-3) and _falls(lrs["llm"][3:])
    alone = _lrs(_trainer(model_args, tmp_path, lora_rank=0, joint_speech_training=False))
    assert list(alone) == ["speech"] and alone["speech"][3] == pytest.approx(1e-3)


def test_one_schedule_without_warm_up(model_args, tmp_path):
    lrs = _lrs(_trainer(model_args, tmp_path))
    for part in ("speech", "llm"):
        assert lrs[part][3] == pytest.approx(1e-3) and _falls(lrs[part][3:])


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


def test_optimizer_groups_come_from_the_models_parts(model_args, tmp_path):
    """Every trained parameter is in exactly one of the model's parts, and each optimizer
    group holds parameters of parts with one rate and one schedule."""
    trainer = _trainer(model_args, tmp_path, lora_learning_rate=2e-4, encoder_learning_rate=5e-5)
    model = trainer.model
    parts = model.param_groups()
    assert set(parts) == {"encoder", "projector", "ctc", "lora"}
    ids = [id(p) for ps in parts.values() for p in ps]
    trained = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(ids) == sorted(trained) and len(set(ids)) == len(ids)
    assert parts["ctc"] == [model.ctc.blank]
    part_of = {id(p): part for part, ps in parts.items() for p in ps}
    expected = {"encoder": (5e-5, "speech"), "projector": (1e-3, "speech"),
                "ctc": (1e-3, "speech"), "lora": (2e-4, "llm")}  # fmt: skip
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            rate, schedule = expected[part_of[id(p)]]
            assert (group["initial_lr"], group["west_part"]) == (pytest.approx(rate), schedule)
