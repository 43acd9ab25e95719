"""Train a WeST model (the projector, and LoRA adapters if asked) with HF Trainer.

    torchrun --standalone --nproc_per_node=8 -m west.bin.train \\
        --llm_model_name_or_path Qwen2-1.5B-Instruct --whisper_model_name_or_path tiny \\
        --data_path train.jsonl --output_dir exp/qwen-tiny --deepspeed conf/ds_config_zero3.json ...

Accepts the 2024 reference's command line unchanged; `--config conf.yaml` supplies
defaults that later flags override.
"""

from __future__ import annotations

import logging
import os
import sys

import torch
import transformers

from west.config import DataArguments, ModelArguments, TrainingArguments
from west.data.batching import collate
from west.data.cache import build_cache
from west.data.dataset import SpeechDataset, read_data, validate
from west.distributed import (
    check_deepspeed_optimizer,
    fill_hidden_size_auto,
    init_deepspeed_on_cpu,
    peak_memory,
    warn_extension_build_locks,
)
from west.models.build import build_model
from west.models.context import ContextSampler
from west.trainer import WestTrainer, resume_checkpoint
from west.utils import yaml_to_argv

logger = logging.getLogger("west.train")


def parse_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    parser = transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    return parser.parse_args_into_dataclasses(args=yaml_to_argv(argv))


def build_data(
    model, data_args: DataArguments, path: str, args: TrainingArguments
) -> SpeechDataset:
    # The LLM reads prompt + speech + transcript + end token: each utterance's transcript
    # gets what its own speech leaves of model_max_length (30 s of speech with pad_to_30s).
    prompt_tokens = len(model.prompt.prefix_ids) + len(model.prompt.suffix_ids)
    speech_tokens_per_second = 50 / model.config.encoder_projector_ds_rate
    utts = validate(
        read_data(path),
        max_seconds=data_args.max_speech_seconds,
        tokenizer=model.tokenizer,
        max_tokens=args.model_max_length - prompt_tokens - 1,
        speech_tokens_per_second=speech_tokens_per_second,
        fixed_speech_seconds=30.0 if model.config.pad_to_30s else None,
        # Longer than the encoder's window: left out, with a warning each and a count (the
        # transcript would not match cut audio), or cut when asked.
        long_audio="cut" if data_args.cut_long_audio else "skip",
        skip_bad=data_args.skip_bad_data,
    )
    logger.info("%s: %d utterances, %.2f h", path, len(utts), sum(u.duration for u in utts) / 3600)
    cache = None
    if data_args.encoder_cache_dir and not model.config.freeze_encoder:
        logger.warning("--encoder_cache_dir is ignored: the encoder is trained, its outputs change")
    elif data_args.encoder_cache_dir:
        cache = build_cache(
            data_args.encoder_cache_dir,
            path,
            model.encoder,
            utts,
            model.config.pad_to_30s,
            batch_size=args.per_device_train_batch_size,
            device=args.device,
            num_workers=args.dataloader_num_workers,
            rank=args.process_index,
            world_size=args.world_size,
        )
    context = None
    if model.config.context.trained and path == data_args.data_path:
        # Biasing lists in the prompt (context_conf), drawn from the training transcripts.
        context = ContextSampler([u.txt for u in utts], model.config.context, seed=args.seed)
        logger.info(
            "context_conf: %.0f%% of utterances get a biasing list; %d rare words to draw from",
            100 * model.config.context.prob,
            len(context.rare),
        )
    return SpeechDataset(
        utts,
        model.encoder.n_mels,
        model.tokenizer,
        model.config.pad_to_30s,
        cache=cache,
        context=context,
    )


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if args.should_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    transformers.set_seed(args.seed)
    if args.deepspeed:
        warn_extension_build_locks()  # before DeepSpeed builds an op: a stale lock hangs it
    # Processes join before the model is built: under ZeRO-3, transformers loads the LLM
    # straight into slices, one per process.
    init_deepspeed_on_cpu(args.deepspeed)
    logger.info(
        "process %d of %d on %s%s",
        args.process_index,
        args.world_size,
        args.device,
        f", DeepSpeed {args.deepspeed}" if args.deepspeed else "",
    )
    check_deepspeed_optimizer(args)
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else torch.float32
    model = build_model(model_args, llm_dtype=dtype)
    fill_hidden_size_auto(getattr(args, "hf_deepspeed_config", None), model.llm_dim)
    train_set = build_data(model, data_args, data_args.data_path, args)
    if model.ctc is not None:
        model.ctc.fit_vocab(model.tokenizer, (u.txt for u in train_set.utts))
    eval_set = (
        build_data(model, data_args, data_args.eval_data_path, args)
        if data_args.eval_data_path
        else None
    )
    trainer = WestTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collate,
        model_config=model_args,
    )
    if args.should_save:
        model_args.save(args.output_dir)
    resume = (
        resume_checkpoint(args.output_dir)
        if args.resume_from_checkpoint is None
        else args.resume_from_checkpoint
    )
    if resume:
        logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()
    trainer.save_model(args.output_dir)
    # Every process says what it needed at most: the figure to size GPUs and hosts by.
    logger.warning("process %d of %d: %s", args.process_index, args.world_size, peak_memory())
    # The processes leave together, each closing its process group.
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def exit_now() -> None:
    """Leave without the interpreter's teardown, once everything is written: under torchrun
    a process aborted there now and then ("terminate called without an active exception",
    a C++ thread of the communication libraries destroyed while still joinable), after the
    run had saved its work; torchrun then reported the whole run failed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
    exit_now()
