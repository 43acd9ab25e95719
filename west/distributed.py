"""What training needs to run as several processes: on GPUs with DeepSpeed ZeRO-3, and on CPU.

Under ZeRO-3 each process holds only a slice of every parameter (`deepspeed.zero.Init`
partitions the LLM while transformers loads it): a parameter's local `.data` is empty, its
full shape is `ds_shape`, and its values exist only inside `GatheredParameters`. Code that
reads a width or a weight must go through the helpers here, so that it works the same with
and without DeepSpeed, on 1 process or 8 GPUs x N nodes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")


def world_size() -> int:
    """Processes taking part, as torchrun announces them (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def has_accelerator() -> bool:
    """A GPU (or other torch accelerator) this process can use."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available()


def init_deepspeed_on_cpu(deepspeed_config) -> None:
    """Start DeepSpeed's communication over gloo when several CPU processes train with it.

    DeepSpeed's CPU accelerator asks for oneCCL; without it, `zero.Init` (run by transformers
    while it loads the LLM) sees a world of one process and refuses the batch sizes. GPUs need
    nothing here: Accelerate starts NCCL itself.
    """
    if not deepspeed_config or has_accelerator() or world_size() == 1:
        return
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")


def extension_build_locks() -> list[tuple[Path, float]]:
    """Lock files of torch C++ extension builds, with their age in seconds.

    DeepSpeed builds its ops (FusedAdam, cpu_adam, the CPU shared-memory communication) the
    first time they are used, under torch's extension root (`TORCH_EXTENSIONS_DIR`, else
    `~/.cache/torch_extensions/<python>_<accelerator>/`), one folder per op. A build holds
    `<op>/lock`; a build that is killed leaves it behind, and every later build of that op
    waits for it to go, without a word and without end.
    """
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    now = time.time()
    locks = []
    for lock in sorted([*root.glob("*/lock"), *root.glob("*/*/lock")]):
        try:
            locks.append((lock, now - lock.stat().st_mtime))
        except FileNotFoundError:  # a build just finished
            continue
    return locks


def warn_extension_build_locks() -> list[Path]:
    """Warn, once per host (local rank 0), about every extension build lock there is now.

    Called before DeepSpeed builds anything, so a lock found here is another job's build in
    progress or one left by a killed build, which would hang this run. Nothing is removed:
    only the user knows whether another job is building. Returns the locks warned about.
    """
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return []
    locks = extension_build_locks()
    for lock, age in locks:
        logger.warning(
            "%s exists (%.0f min old): a torch extension build holds it. Unless another job "
            "is building that op now, it is left from a build that was killed, and this run "
            "will wait for it without end when DeepSpeed builds the op: remove it (rm %s)",
            lock,
            age / 60,
            lock,
        )
    return [lock for lock, _ in locks]


def is_partitioned(param: torch.Tensor) -> bool:
    """True for a parameter that ZeRO-3 has partitioned across the processes."""
    return hasattr(param, "ds_id")


def full_shape(param: torch.Tensor) -> tuple[int, ...]:
    """The parameter's shape as the model sees it, partitioned or not."""
    return tuple(param.ds_shape) if is_partitioned(param) else tuple(param.shape)


@contextlib.contextmanager
def gathered(params: Iterable[torch.Tensor], modifier_rank: int | None = None) -> Iterator[None]:
    """Inside, the given parameters hold their full values on every process.

    A collective call under ZeRO-3: every process must enter it with the same parameters.
    With `modifier_rank=r`, what process r writes into them is kept (and partitioned again)
    on the way out. Without ZeRO-3 it does nothing.
    """
    params = [p for p in params if is_partitioned(p)]
    if not params:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank):
        yield


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed run this process is in; (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every process of the run (nothing to wait for without one)."""
    if rank_and_world()[1] > 1:
        torch.distributed.barrier()


def decided_by_rank0(decide: Callable[[], T]) -> T:
    """Run `decide` on rank 0 only; every process returns its answer.

    For decisions with side effects on shared storage (setting incomplete checkpoints
    aside): one process acts, the others wait for it and use what it found.
    """
    rank, world = rank_and_world()
    if world == 1:
        return decide()
    answer = [decide() if rank == 0 else None]
    torch.distributed.broadcast_object_list(answer, src=0)
    return answer[0]


# DeepSpeed's ZeRO settings that transformers fills from `model.config.hidden_size` when
# they are "auto", with the factors transformers uses (its `trainer_config_finalize`).
_HIDDEN_SIZE_AUTO = {
    "reduce_bucket_size": lambda h: h * h,
    "stage3_prefetch_bucket_size": lambda h: int(0.9 * h * h),
    "stage3_param_persistence_threshold": lambda h: 10 * h,
}


def fill_hidden_size_auto(hf_deepspeed_config, hidden_size: int) -> dict[str, int]:
    """Resolve the ZeRO "auto" values that depend on the model's width.

    transformers reads the width from `model.config.hidden_size`; a SpeechLLM's config is
    WeST's own (the width is the LLM's), so WeST fills these before the Trainer looks.
    Returns what was filled.
    """
    if hf_deepspeed_config is None:
        return {}
    zero = hf_deepspeed_config.config.get("zero_optimization", {})
    filled = {}
    for key, value in _HIDDEN_SIZE_AUTO.items():
        if zero.get(key) == "auto":
            zero[key] = filled[key] = value(hidden_size)
    if filled:
        logger.info("DeepSpeed 'auto' values from the LLM's width %d: %s", hidden_size, filled)
    return filled


def check_deepspeed_optimizer(args) -> None:
    """Refuse WeST's own optimizer settings where a DeepSpeed config's optimizer or scheduler
    section would silently replace them (transformers then hands all trained parameters to
    DeepSpeed's optimizer in one group, with its schedule)."""
    ds = getattr(args, "hf_deepspeed_config", None)
    if ds is None:
        return
    own = {
        "lora_learning_rate": getattr(args, "lora_learning_rate", None),
        "encoder_learning_rate": getattr(args, "encoder_learning_rate", None),
        "ctc_only_steps": getattr(args, "ctc_only_steps", 0) or None,
    }
    own = {k: v for k, v in own.items() if v is not None}
    sections = [s for s in ("optimizer", "scheduler") if s in ds.config]
    if own and sections:
        raise ValueError(
            f"{args.deepspeed}: its {' and '.join(sections)} section(s) replace WeST's per-part "
            f"learning rates and schedules, so {sorted(own)} would be ignored; remove the "
            "section(s) (WeST's optimizer and schedule then run under DeepSpeed) or those flags"
        )


def peak_memory() -> str:
    """This process's peak memory: host RSS, and the GPU's allocator peak where one is used."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    text = f"peak host memory {rss:.2f} GiB"
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        text += f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated"
    return text
