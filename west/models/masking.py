"""SpecAugment-style masking of the speech encoder's output frames, in training only.

With a frozen (and cached) encoder, masking its mel input would mean running it again every
epoch; masking its output keeps the cache and still stops the projector from leaning on any
one stretch of time or any few channels. `speech_masking` (a mapping, off by default):

    time_masks: spans of frames zeroed per utterance      time_width: at most this many frames
    channel_masks: bands of channels zeroed per utterance  channel_width: at most this many

Widths are drawn uniformly from 0 to the maximum; a time span never covers more than
`max_time_share` of an utterance's frames. The settings are west.config.MaskConf.
"""

from __future__ import annotations

import torch

from west.config import MaskConf


def mask_frames(x: torch.Tensor, lens: torch.Tensor, conf: MaskConf) -> torch.Tensor:
    """(B, T, D) frames with `conf`'s spans and bands zeroed (a new tensor); `lens` (B,)
    bound the time spans to each utterance's real frames."""
    if not conf.active:
        return x
    b, t, d = x.shape
    keep = torch.ones(b, t, d, dtype=torch.bool, device=x.device)
    frames = torch.arange(t, device=x.device)
    channels = torch.arange(d, device=x.device)
    for i in range(b):
        n = int(lens[i])
        widest = min(conf.time_width, int(n * conf.max_time_share))
        for _ in range(conf.time_masks if widest > 0 else 0):
            width = int(torch.randint(0, widest + 1, ()))
            start = int(torch.randint(0, n - width + 1, ()))
            keep[i, (frames >= start) & (frames < start + width), :] = False
        for _ in range(conf.channel_masks):
            width = int(torch.randint(0, min(conf.channel_width, d) + 1, ()))
            start = int(torch.randint(0, d - width + 1, ()))
            keep[i, :, (channels >= start) & (channels < start + width)] = False
    return x * keep.to(x.dtype)
