"""CTC compression of the speech the LLM reads.

Frames whose most likely CTC label is blank are dropped and runs of frames sharing a label
are averaged, so the LLM reads about one vector per token instead of one per 100 ms
(the CTC compressor of Wu et al., 2023, "On decoder-only architecture for speech-to-text
and large language model integration"). With a `table` (the LLM's input embeddings plus the
blank vector) each frame is first replaced by its CTC-posterior mix of those embeddings,
which puts the speech on the token-embedding manifold the LLM was trained on.
"""

from __future__ import annotations

import torch


def ctc_compress(
    frames: torch.Tensor,
    lens: torch.Tensor,
    logits: torch.Tensor,
    blank: int,
    table: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (B, N, D), lens (B,), logits (B, N, V + 1) -> (B, N', D) zero-padded, lens (B,)."""
    if table is not None:
        frames = logits.softmax(-1).to(table.dtype) @ table
    best = logits.argmax(-1)
    rows = []
    for i in range(frames.shape[0]):
        n = int(lens[i])
        labels, f = best[i, :n], frames[i, :n]
        keep = labels != blank
        if not bool(keep.any()) and n > 0:
            # All blank: keep the frame most likely to be a token, so the LLM reads something.
            keep = torch.zeros_like(keep)
            keep[logits[i, :n, :blank].max(-1).values.argmax()] = True
        starts = torch.ones_like(labels, dtype=torch.bool)
        starts[1:] = labels[1:] != labels[:-1]
        run = (torch.cumsum(starts.long(), 0) - 1)[keep]
        _, group = torch.unique_consecutive(run, return_inverse=True)
        m = int(group.max()) + 1 if group.numel() else 0
        summed = f.new_zeros(m, f.shape[1]).index_add(0, group, f[keep])
        count = torch.bincount(group, minlength=m).clamp(min=1).to(f.dtype)
        rows.append(summed / count[:, None])
    out_lens = torch.tensor([r.shape[0] for r in rows], device=frames.device)
    out = frames.new_zeros(len(rows), max(int(out_lens.max()), 1), frames.shape[-1])
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out, out_lens
