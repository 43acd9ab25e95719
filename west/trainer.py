"""WestTrainer: Hugging Face's Trainer with WeST's checkpoints, sampler and optimizer groups.

- Checkpoints hold only what was trained (projector, LoRA) as safetensors, plus
  `west_config.json`, and a `west_complete` marker written last: a checkpoint without
  it (killed while saving) is never resumed from.
- Batches are grouped by length (seeded by epoch, so a resumed run keeps its order).
- LoRA adapters (and trained encoder blocks) may have their own learning rate; the model
  says which parameters are which (`SpeechLLM.param_groups`).
- With a CTC-only warm-up each part gets the configured schedule over the steps it learns in:
  the speech side (encoder blocks, projector, CTC blank) over the warm-up and again over the
  joint steps (or only over the warm-up, `--joint_speech_training False`), the LLM side (LoRA)
  over the joint steps, so the adapters start learning at the full rate.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Trainer, get_scheduler
from transformers.trainer import SCHEDULER_NAME

from west.checkpoint import COMPLETE_MARKER, WEIGHTS_NAME, newest_checkpoint, set_aside_incomplete
from west.data.batching import LengthGroupedSampler
from west.distributed import decided_by_rank0, gathered
from west.models.build import load_trained

logger = logging.getLogger(__name__)


def resume_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The checkpoint a run resumes from, decided by rank 0 (which sets incomplete ones aside)
    while the other processes wait for its answer."""
    return decided_by_rank0(lambda: last_complete_checkpoint(output_dir))


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """Newest `checkpoint-N` holding the completion marker; incomplete ones are set aside."""
    set_aside_incomplete(output_dir)
    ckpt = newest_checkpoint(output_dir)
    return str(ckpt) if ckpt else None


def weights_fingerprint(model: torch.nn.Module) -> str:
    """Sum and sum of squares of the trained parameters (gathered under ZeRO-3; a collective
    call then): equal on processes that hold the same weights."""
    total, squares = 0.0, 0.0
    for p in model.parameters():
        if p.requires_grad:
            with gathered([p]):
                t = p.detach().double()
                total, squares = total + float(t.sum()), squares + float((t * t).sum())
    return f"{total:.12e} {squares:.12e}"


class WestTrainer(Trainer):
    def __init__(self, *args, model_config=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_config = model_config
        self._extra_losses: dict[str, list[float]] = defaultdict(list)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if getattr(self.args, "length_grouping", True) and hasattr(dataset, "lengths"):
            return LengthGroupedSampler(
                dataset.lengths, self.args.per_device_train_batch_size, seed=self.args.seed
            )
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if getattr(self.args, "log_utterance_keys", False) and model.training:
            self._audit(model, inputs["keys"])
        if self.state.global_step < getattr(self.args, "ctc_only_steps", 0) and model.training:
            # CTC-only warm-up: cheap steps (no LLM pass) that pull the projected frames
            # towards the LLM's token embeddings before the LLM has to read them.
            inputs = {**inputs, "lm_weight": 0.0}
        outputs = model(**inputs)
        for name in ("lm_loss", "ctc_loss"):
            if name in outputs:
                self._extra_losses[name].append(float(outputs[name]))
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    def _audit(self, model, keys: list[str]) -> None:
        """An audit trail of the run, per process: each step's utterance keys, and the trained
        weights it starts from. A resumed run can be checked against an unbroken one (steps
        redone after a kill appear twice; the last one counts), and the processes of one run
        against each other (different utterances, the same weights)."""
        out, rank, step = (
            Path(self.args.output_dir),
            self.args.process_index,
            self.state.global_step,
        )
        with open(out / f"utterance_keys.rank{rank}.txt", "a") as f:
            f.write(f"{step + 1} {' '.join(keys)}\n")
        fingerprint = weights_fingerprint(self.accelerator.unwrap_model(model))
        with open(out / f"weights.rank{rank}.txt", "a") as f:
            f.write(f"{step} {fingerprint}\n")

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            for name, values in self._extra_losses.items():
                if values:
                    logs[name] = round(sum(values) / len(values), 4)
            self._extra_losses.clear()
        if "learning_rate" in logs:  # HF logs the first group's rate only
            logs.update(self.part_learning_rates())
        super().log(logs, start_time)

    def part_learning_rates(self) -> dict[str, float]:
        """`learning_rate_<part>` of each part ("speech", "llm") when there are several, the
        first group's of each: the parts have their own schedules (`create_scheduler`)."""
        groups = getattr(self.optimizer, "param_groups", None) or []
        rates: dict[str, float] = {}
        for group in groups:
            if "west_part" in group:
                rates.setdefault(f"learning_rate_{group['west_part']}", float(group["lr"]))
        return rates if len(rates) > 1 else {}

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.model
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = cls(self.optimizer_groups(model), **kwargs)
        return super().create_optimizer()

    def optimizer_groups(self, model) -> list[dict]:
        """One group per (learning rate, weight decay, schedule part) of the model's trained
        parameters, in the model's parameter order.

        LoRA adapters and trained encoder blocks may have their own rates; the schedule
        parts are "speech" (encoder blocks, projector, CTC blank) and "llm" (LoRA, LLM).
        """
        args = self.args
        lr = {
            "encoder": getattr(args, "encoder_learning_rate", None) or args.learning_rate,
            "projector": args.learning_rate,
            "ctc": args.learning_rate,
            "lora": getattr(args, "lora_learning_rate", None) or args.learning_rate,
            "llm": args.learning_rate,
        }
        schedule = {"lora": "llm", "llm": "llm"}  # the other parts: "speech"
        part_of = {id(p): part for part, ps in model.param_groups().items() for p in ps}
        decay = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[float, float, str], list[torch.nn.Parameter]] = defaultdict(list)
        for n, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if id(p) not in part_of:
                raise ValueError(f"trained parameter {n} is in none of the model's param_groups")
            part = part_of[id(p)]
            wd = args.weight_decay if n in decay else 0.0
            groups[(lr[part], wd, schedule.get(part, "speech"))].append(p)
        return [
            {"params": ps, "lr": rate, "weight_decay": wd, "west_part": part}
            for (rate, wd, part), ps in groups.items()
        ]

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        warm_up = getattr(self.args, "ctc_only_steps", 0)
        # joint_speech_training False without CTC-only steps: the speech side stays as loaded
        fixed = warm_up == 0 and not getattr(self.args, "joint_speech_training", True)
        if self.lr_scheduler is not None or not (0 < warm_up < num_training_steps or fixed):
            return super().create_scheduler(num_training_steps, optimizer)
        # The configured schedule over each phase: warm-up (CTC only), then joint training.
        phases = [(0, warm_up), (warm_up, num_training_steps - warm_up)]
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        shapes = [
            get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=probe,
                num_warmup_steps=self.args.get_warmup_steps(n),
                num_training_steps=n,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            ).lr_lambdas[0]
            for _, n in phases
        ]
        optimizer = optimizer or self.optimizer
        parts = [g.get("west_part", "speech") for g in optimizer.param_groups]
        speech_joint = getattr(self.args, "joint_speech_training", True) or "llm" not in parts

        def both(step: int) -> float:
            i = int(step >= warm_up)
            return shapes[i](step - phases[i][0])

        def first(step: int) -> float:  # the speech side, fixed after its warm-up
            return shapes[0](step) if step < warm_up else 0.0

        def second(step: int) -> float:  # the LLM side: it has nothing to learn before
            return shapes[1](step - warm_up) if step >= warm_up else 0.0

        factors = [(second if part == "llm" else both if speech_joint else first) for part in parts]
        if fixed and not speech_joint:
            logger.warning(
                "joint_speech_training False and no ctc_only_steps: the speech side (projector, "
                "CTC blank, trained encoder blocks) stays as loaded for all %d steps; only the "
                "LLM side trains",
                num_training_steps,
            )
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # Only trained tensors are in WeST checkpoints: load them with shape checks.
        load_trained(self.accelerator.unwrap_model(model or self.model), resume_from_checkpoint)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Write the trained tensors, the model configuration and the run's settings.

        Only what was trained is saved, gathered one parameter at a time (under ZeRO-3
        transformers would gather the whole model in 16 bits onto rank 0 first). Every
        process must call this; the main one writes.
        """
        output_dir = output_dir or self.args.output_dir
        model = self.accelerator.unwrap_model(self.model)
        state = model.trainable_state_dict(keep=self.args.should_save)
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        save_file(state, os.path.join(output_dir, WEIGHTS_NAME), metadata={"format": "pt"})
        if self.model_config is not None:
            self.model_config.save(output_dir)
        # The run's settings as JSON (HF's training_args.bin is a pickle: not written here).
        Path(output_dir, "training_args.json").write_text(self.args.to_json_string())

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self.is_deepspeed_enabled:
            from accelerate.utils import DeepSpeedSchedulerWrapper  # exists with DeepSpeed only

            # DeepSpeed's checkpoint (optimizer state and the trained parameters' fp32
            # slices, per process) without slices of the frozen LLM and encoder: they are
            # reloaded from their own files on resume.
            self.model_wrapped.save_checkpoint(output_dir, exclude_frozen_parameters=True)
            # A schedule DeepSpeed does not run itself is saved beside, as transformers does.
            if self.args.should_save and not isinstance(
                self.lr_scheduler, DeepSpeedSchedulerWrapper
            ):
                torch.save(self.lr_scheduler.state_dict(), os.path.join(output_dir, SCHEDULER_NAME))
            return
        super()._save_optimizer_and_scheduler(output_dir)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        # Every process has written its part (DeepSpeed slices, RNG state) before the
        # marker says the checkpoint is complete.
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            ckpt = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            (ckpt / COMPLETE_MARKER).write_text(f"{self.state.global_step}\n")
