"""Frozen-encoder outputs, computed once and read back every epoch.

With a frozen encoder, every epoch recomputes exactly the same encoder frames: audio
loading, log-mel and the encoder's forward pass are wasted after the first. The cache
runs the encoder once over the data (batched, variable length) and stores each
utterance's frames; the dataset then yields `{"enc": (T', D)}` instead of `"mel"`.

Layout (one small file per utterance: written atomically, read with one `open`, so a
killed run or a concurrent writer never leaves a half file, and nothing is held in memory):

    <cache_dir>/<fingerprint>/<h[:2]>/<h>.npy

- `fingerprint` hashes the encoder (class, geometry, every weight's bytes), the feature
  settings (n_mels, `pad_to_30s`, a feature-code version) and the storage dtype: another
  encoder, fine-tuned weights or 30 s padding get another folder, never stale frames.
- `h` hashes the audio file's absolute path, size and modification time (ns): a rewritten
  or touched file gets a new entry, recomputed on the next run.

Frames are stored as float16 (half the disk and page cache of float32; Whisper's
post-LayerNorm outputs are well inside its range, and an utterance whose frames would
overflow is stored as float32 instead). The dataset returns float32. The loss from cached
frames matches the uncached loss to fp16 rounding (see tests/test_cache.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from west.data.batching import collate
from west.data.dataset import DataError, SpeechDataset, Utterance

logger = logging.getLogger(__name__)

# Bump when log-mel extraction changes in a way that changes the encoder's input.
FEATURE_VERSION = "whisper-log-mel-1"
FP16_MAX = float(np.finfo(np.float16).max)


def encoder_fingerprint(encoder: nn.Module, pad_to_30s: bool, dtype: str = "float16") -> str:
    """16 hex digits identifying the encoder's weights and geometry and the feature settings."""
    h = hashlib.blake2b(digest_size=8)
    dims = getattr(encoder, "dims", None)
    h.update(
        json.dumps(
            {
                "class": type(encoder).__name__,
                "dims": repr(dims),
                "pad_to_30s": bool(pad_to_30s),
                "features": FEATURE_VERSION,
                "dtype": dtype,
            },
            sort_keys=True,
        ).encode()
    )
    for name, tensor in sorted(encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def audio_key(wav: str | os.PathLike, cut_seconds: float | None = None) -> str:
    """Hash of the audio file's absolute path, size and modification time (and its cut)."""
    path = os.path.abspath(wav)
    st = os.stat(path)
    cut = "" if cut_seconds is None else f"\0cut{cut_seconds}"
    return hashlib.blake2b(
        f"{path}\0{st.st_size}\0{st.st_mtime_ns}{cut}".encode(), digest_size=16
    ).hexdigest()


def default_cache_dir(data_path: str) -> Path:
    """`encoder_cache/` beside the (first) data list: inside a Kaldi dir, or a jsonl's folder."""
    first = Path(data_path.split(",")[0].strip())
    return (first if first.is_dir() else first.parent) / "encoder_cache"


@dataclass
class EncoderCache:
    """Where one encoder's outputs live; picklable, so DataLoader workers can read it."""

    root: Path
    fingerprint: str
    dtype: str = "float16"

    @classmethod
    def for_encoder(
        cls,
        cache_dir: str | os.PathLike,
        encoder: nn.Module,
        pad_to_30s: bool,
        dtype: str = "float16",
    ) -> EncoderCache:
        if dtype not in ("float16", "float32"):
            raise ValueError(f"cache dtype {dtype!r}; expected float16 or float32")
        fingerprint = encoder_fingerprint(encoder, pad_to_30s, dtype)
        root = Path(cache_dir) / fingerprint
        root.mkdir(parents=True, exist_ok=True)
        meta = root / "cache.json"
        if not meta.is_file():
            info = {
                "encoder": type(encoder).__name__,
                "dims": repr(getattr(encoder, "dims", None)),
                "pad_to_30s": bool(pad_to_30s),
                "features": FEATURE_VERSION,
                "dtype": dtype,
            }
            tmp = meta.with_name(f".cache.json.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(info, indent=2) + "\n")
            os.replace(tmp, meta)
        others = [p.name for p in Path(cache_dir).iterdir() if p.is_dir() and p != root]
        if others:
            logger.info(
                "%s: also holds caches of other encoders/settings %s (delete them to free space)",
                cache_dir,
                others[:5],
            )
        return cls(root, fingerprint, dtype)

    def path(self, utt: Utterance) -> Path:
        h = audio_key(utt.wav, utt.cut_seconds)
        return self.root / h[:2] / f"{h}.npy"

    def missing(self, utts: list[Utterance]) -> list[Utterance]:
        return [u for u in utts if not self.path(u).is_file()]

    def load(self, utt: Utterance) -> torch.Tensor:
        """(T', D) float32 encoder frames of `utt`."""
        path = self.path(utt)
        try:
            array = np.load(path)
        except FileNotFoundError:
            raise DataError(
                f"{utt.where}: no cached encoder output for {utt.wav} in {self.root} "
                "(was the audio rewritten after the cache was built?); rerun to rebuild it"
            ) from None
        return torch.from_numpy(array).float()

    def save(self, utt: Utterance, frames: torch.Tensor) -> None:
        """Store (T', D) frames; written under a temporary name, then renamed."""
        array = frames.detach().float().cpu().numpy()
        if self.dtype == "float16" and float(np.abs(array).max(initial=0.0)) < FP16_MAX:
            array = array.astype(np.float16)
        path = self.path(utt)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, array)
        os.replace(tmp, path)


@torch.inference_mode()
def fill_cache(
    cache: EncoderCache,
    encoder: nn.Module,
    utts: list[Utterance],
    pad_to_30s: bool,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    desc: str = "encoder cache",
) -> int:
    """Encode the utterances of `utts` not yet cached; returns how many were computed.

    Utterances are sorted by duration so each batch pads little; the variable-length
    encoder gives each utterance the frames it would get alone.
    """
    todo = sorted(cache.missing(utts), key=lambda u: -u.duration)
    if not todo:
        return 0
    dataset = SpeechDataset(todo, encoder.n_mels, pad_to_30s=pad_to_30s)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate, num_workers=num_workers
    )
    param = next(encoder.parameters())
    was_training, old_device = encoder.training, param.device
    encoder.eval().to(device)
    done = 0
    try:
        with tqdm(total=len(todo), desc=desc, unit="utt", disable=None) as bar:
            for batch in loader:
                mel = batch["mel"].to(device=device, dtype=param.dtype)
                enc, lens = encoder(mel, batch["mel_lens"].to(device))
                for j in range(enc.shape[0]):
                    cache.save(todo[done + j], enc[j, : lens[j]])
                done += enc.shape[0]
                bar.update(enc.shape[0])
    finally:
        encoder.to(old_device).train(was_training)
    return done


def prepare_cache(
    cache: EncoderCache,
    encoder: nn.Module,
    utts: list[Utterance],
    pad_to_30s: bool,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> None:
    """Fill the cache for `utts`, sharing the work between the ranks of a distributed run.

    Each rank encodes every `world_size`-th missing utterance, then all wait on a barrier
    (a long first pass may need a larger `--ddp_timeout`). Afterwards every rank fills what
    it still misses itself: that covers a node-local cache dir in a multi-node run.
    """
    distributed = world_size > 1 and torch.distributed.is_initialized()
    if distributed:
        # Shard by position in `utts` (the same list on every rank), not among the missing:
        # another rank may already be writing, so "missing" differs from rank to rank.
        shard = utts[rank::world_size]
        fill_cache(cache, encoder, shard, pad_to_30s, batch_size, device, num_workers)
        torch.distributed.barrier()
    n = fill_cache(cache, encoder, utts, pad_to_30s, batch_size, device, num_workers)
    logger.info(
        "encoder cache %s: %d utterances ready%s",
        cache.root,
        len(utts),
        f" ({n} computed after the {world_size} ranks' shared pass)"
        if distributed
        else f" ({n} computed)",
    )


def build_cache(
    cache_dir: str | os.PathLike,
    data_path: str,
    encoder: nn.Module,
    utts: list[Utterance],
    pad_to_30s: bool,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> EncoderCache:
    """The filled cache of `encoder`'s outputs for `utts` in `cache_dir`.

    `cache_dir` "auto" puts it in `encoder_cache/` beside the data list `data_path`.
    """
    if str(cache_dir) == "auto":
        cache_dir = default_cache_dir(data_path)
    cache = EncoderCache.for_encoder(cache_dir, encoder, pad_to_30s)
    prepare_cache(
        cache, encoder, utts, pad_to_30s, batch_size, device, num_workers, rank, world_size
    )
    return cache
