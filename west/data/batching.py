"""Batches: padding with lengths, and length-grouped sampling so little padding is computed."""

from __future__ import annotations

import torch


def collate(items: list[dict]) -> dict:
    """Pad a list of dataset items into a batch.

    mel (B, n_mels, T) zero-padded + mel_lens (B,), or enc (B, T', D) + enc_lens for cached
    encoder outputs; text_ids (B, L) zero-padded + text_lens (B,); keys (list); context_ids
    (a list of token id lists) when the items have biasing lists; context (a list of
    hotword lists) when some item has hotwords.
    """
    batch: dict = {"keys": [it["key"] for it in items]}
    for name, time_dim in (("mel", -1), ("enc", 0)):
        if name in items[0]:
            feats = [it[name] for it in items]
            lens = torch.tensor([f.shape[time_dim] for f in feats])
            shape = list(feats[0].shape)
            shape[time_dim] = int(lens.max())
            out = feats[0].new_zeros([len(feats)] + shape)
            for i, f in enumerate(feats):
                if time_dim == -1:
                    out[i, ..., : f.shape[-1]] = f
                else:
                    out[i, : f.shape[0]] = f
            batch[name], batch[f"{name}_lens"] = out, lens
    if "text_ids" in items[0]:
        ids = [torch.tensor(it["text_ids"], dtype=torch.long) for it in items]
        lens = torch.tensor([len(x) for x in ids])
        text = torch.zeros(len(ids), max(int(lens.max()), 1), dtype=torch.long)
        for i, x in enumerate(ids):
            text[i, : len(x)] = x
        batch["text_ids"], batch["text_lens"] = text, lens
    if "context_ids" in items[0]:  # biasing lists' prompt tokens, as lists (may be empty)
        batch["context_ids"] = [it["context_ids"] for it in items]
    if any("context" in it for it in items):  # the data list's hotwords, [] where none
        batch["context"] = [it.get("context") or [] for it in items]
    return batch


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Shuffled indices in which each run of `batch_size` has similar lengths.

    Each epoch: a seeded permutation, cut into groups of `group_batches` batches, each
    group sorted by length; the batches are then shuffled. The order depends only on
    (seed, epoch), so a resumed run sees exactly the order an unbroken one would.
    """

    def __init__(
        self, lengths: list[float], batch_size: int, seed: int = 0, group_batches: int = 50
    ):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.group_batches = group_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        group = self.batch_size * self.group_batches
        batches = []
        for start in range(0, len(order), group):
            chunk = sorted(order[start : start + group], key=lambda i: -self.lengths[i])
            batches += [
                chunk[j : j + self.batch_size] for j in range(0, len(chunk), self.batch_size)
            ]
        # Partial batches go last so the stream re-batches into the same groups.
        full = [b for b in batches if len(b) == self.batch_size]
        partial = [b for b in batches if len(b) < self.batch_size]
        for b in torch.randperm(len(full), generator=g).tolist():
            yield from full[b]
        for b in partial:
            yield from b
