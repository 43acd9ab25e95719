"""CTC forced alignment: where in the audio each label of a known transcript was said.

The Viterbi path of the standard CTC topology through the CTC branch's log posteriors: the
label sequence l_1 .. l_L is expanded to blank, l_1, blank, l_2, ..., l_L, blank (S = 2L + 1
states); a path starts in the first blank or l_1, ends in l_L or the last blank, and each
frame stays in its state, moves to the next, or skips a blank between two different labels
(between equal consecutive labels the blank is obligatory, else they would merge). The most
likely such path gives each label a run of frames: its first and last frame.

The recursion is vectorised over the S states; frames are a Python loop (a 28 s window at
the default 100 ms frame is 280 steps).
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Alignment:
    """Per label (L,): its first and last frame (long, inclusive) and its score, the mean
    log posterior of the label over those frames (exp(score) is their geometric mean).
    `spread` is True when the labels could not fit the frames and were spread evenly."""

    first: torch.Tensor
    last: torch.Tensor
    score: torch.Tensor
    spread: bool = False

    @property
    def frames(self) -> torch.Tensor:
        """(L,) frames each label holds."""
        return self.last - self.first + 1


def align(log_probs: torch.Tensor, labels: torch.Tensor) -> Alignment:
    """Force-align `labels` (L,) (CTC label indices, not blank) to `log_probs` (T, C + 1),
    the CTC log posteriors of T frames, blank last.

    Returns the most likely CTC path's run of frames per label (see the module docstring).
    When the labels cannot fit the frames (T < L + the number of equal consecutive pairs,
    each of which needs a blank between), there is no CTC path at all: the labels are then
    spread evenly over the frames (label i gets frames from i*T//L, at least one; labels share
    frames when L > T) and the Alignment says `spread`. ValueError for labels but no frames,
    or a label that is the blank or outside the posteriors.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs of shape {tuple(log_probs.shape)}: expected (T, C + 1)")
    t_max, width = log_probs.shape
    blank = width - 1
    labels = torch.as_tensor(labels, dtype=torch.long).cpu().reshape(-1)
    n = len(labels)
    if n == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return Alignment(empty, empty.clone(), torch.zeros(0))
    if t_max == 0:
        raise ValueError(f"{n} labels to align but no frames")
    if int(labels.min()) < 0 or int(labels.max()) >= blank:
        raise ValueError(
            f"labels from {int(labels.min())} to {int(labels.max())}: expected CTC label "
            f"indices 0..{blank - 1} (the blank, {blank}, is not a label)"
        )
    # Only the labels' columns and the blank's: (T, L + 1), float64, log 0 as a finite floor
    # (every path keeps a score, so the best one is a valid path).
    columns = torch.cat([labels, torch.tensor([blank])]).to(log_probs.device)
    x = log_probs.detach().index_select(1, columns).cpu().double().clamp(min=-1e9)
    own = torch.arange(n)  # label i is column i of x
    repeats = int((labels[1:] == labels[:-1]).sum())
    if n + repeats > t_max:
        return _spread(x, own)
    path = _viterbi(x, own, labels[1:] != labels[:-1])  # (T,) state per frame
    on = path % 2 == 1  # frames in a label state
    index = (path[on] - 1) // 2  # which label
    frames = torch.arange(t_max)[on]
    first = torch.full((n,), t_max, dtype=torch.long).scatter_reduce(0, index, frames, "amin")
    last = torch.full((n,), -1, dtype=torch.long).scatter_reduce(0, index, frames, "amax")
    return Alignment(first, last, _mean_scores(x, own, first, last))


def _viterbi(x: torch.Tensor, labels: torch.Tensor, differ: torch.Tensor) -> torch.Tensor:
    """The best path's state (0 .. 2L) at each of the T frames. x (T, C + 1) float64, blank
    last; labels (L,) columns of x; differ (L - 1,): label i + 1 is not label i."""
    t_max, n = x.shape[0], len(labels)
    states = torch.full((2 * n + 1,), x.shape[1] - 1, dtype=torch.long)
    states[1::2] = labels
    emit = x[:, states]  # (T, S)
    # A label state may be entered from two states back (over a blank) unless it repeats
    # the label before it.
    skip = torch.zeros(2 * n + 1, dtype=torch.bool)
    skip[3::2] = differ
    neg = torch.tensor(float("-inf"), dtype=x.dtype)
    score = torch.full((2 * n + 1,), float("-inf"), dtype=x.dtype)
    score[:2] = emit[0, :2]
    back = torch.zeros(t_max, 2 * n + 1, dtype=torch.uint8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, t_max):
        step = torch.cat([neg[None], score[:-1]])
        jump = torch.where(skip, torch.cat([neg[None], neg[None], score[:-2]]), neg)
        best, arg = torch.stack([score, step, jump]).max(0)
        back[t] = arg.to(torch.uint8)
        score = best + emit[t]
    s = 2 * n if score[2 * n] >= score[2 * n - 1] else 2 * n - 1
    moves = back.numpy()
    path = [0] * t_max
    for t in range(t_max - 1, -1, -1):
        path[t] = s
        s -= int(moves[t, s])
    return torch.tensor(path, dtype=torch.long)


def _spread(x: torch.Tensor, labels: torch.Tensor) -> Alignment:
    """Labels that cannot fit the frames, spread evenly over them (align's docstring)."""
    t_max, n = x.shape[0], len(labels)
    i = torch.arange(n)
    first = i * t_max // n
    last = torch.maximum((i + 1) * t_max // n - 1, first)
    return Alignment(first, last, _mean_scores(x, labels, first, last), spread=True)


def _mean_scores(
    x: torch.Tensor, labels: torch.Tensor, first: torch.Tensor, last: torch.Tensor
) -> torch.Tensor:
    """(L,) float32: each label's mean log posterior over its frames first..last."""
    per_frame = x[:, labels]  # (T, L)
    cum = torch.cat([per_frame.new_zeros(1, len(labels)), per_frame.cumsum(0)])
    i = torch.arange(len(labels))
    total = cum[last + 1, i] - cum[first, i]
    return (total / (last - first + 1)).float()
