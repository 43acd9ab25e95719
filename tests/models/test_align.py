"""CTC forced alignment (west.models.align) against two references: every CTC path of a
tiny case enumerated, and a dynamic program over label runs for larger ones; and on
hand-made posteriors whose alignment is known."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from west.models.align import align


def _posteriors(t: int, c: int, seed: int) -> torch.Tensor:
    """(t, c + 1) random CTC log posteriors, blank last, peaky enough to mean something."""
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(t, c + 1, generator=g)).log_softmax(-1)


def _runs_score(x: torch.Tensor, labels: list[int], first, last) -> float:
    """log P of the path that holds label i on frames first[i]..last[i], blank elsewhere."""
    blank = x.shape[1] - 1
    per_frame = [blank] * x.shape[0]
    for lab, a, b in zip(labels, first, last):
        for t in range(int(a), int(b) + 1):
            per_frame[t] = lab
    return sum(float(x[t, s]) for t, s in enumerate(per_frame))


def _brute_force(x: torch.Tensor, labels: list[int]):
    """The best CTC path by enumerating all (C + 1)^T frame labellings: (score, runs)."""
    t_max, width = x.shape
    blank = width - 1
    best = (-math.inf, None)
    for path in itertools.product(range(width), repeat=t_max):
        runs = []  # (label, first, last) of each run of one non-blank label
        for t, s in enumerate(path):
            if s == blank:
                continue
            if runs and runs[-1][0] == s and runs[-1][2] == t - 1:
                runs[-1][2] = t
            else:
                runs.append([s, t, t])
        if [r[0] for r in runs] != labels:
            continue
        score = sum(float(x[t, s]) for t, s in enumerate(path))
        if score > best[0]:
            best = (score, [(r[1], r[2]) for r in runs])
    return best


def _run_dp(x: torch.Tensor, labels: list[int]) -> float:
    """The best CTC path's score by a dynamic program over each label's run [a, b]: a run
    starts after the previous run ends (one frame later at least when the labels are equal)
    and the frames between runs are blank."""
    t_max = x.shape[0]
    blank = x.shape[1] - 1
    blank_cum = [0.0]
    for t in range(t_max):
        blank_cum.append(blank_cum[-1] + float(x[t, blank]))

    def blanks(a: int, b: int) -> float:  # frames a..b-1 blank
        return blank_cum[b] - blank_cum[a]

    def run(lab: int, a: int, b: int) -> float:
        return sum(float(x[t, lab]) for t in range(a, b + 1))

    # best[b]: best score of labels[: i + 1] with label i's run ending at frame b
    best = {b: max(blanks(0, a) + run(labels[0], a, b) for a in range(b + 1)) for b in range(t_max)}
    for i in range(1, len(labels)):
        gap = 1 if labels[i] == labels[i - 1] else 0
        new = {}
        for b in range(t_max):
            options = [
                best[e] + blanks(e + 1, a) + run(labels[i], a, b)
                for a in range(b + 1)
                for e in range(a - gap)
                if e in best
            ]
            if options:
                new[b] = max(options)
        best = new
    return max(s + blanks(b + 1, t_max) for b, s in best.items())


@pytest.mark.parametrize("seed", range(12))
def test_best_path_is_the_brute_force_best(seed):
    g = torch.Generator().manual_seed(100 + seed)
    t = int(torch.randint(3, 7, (1,), generator=g))
    n = int(torch.randint(1, min(t, 3) + 1, (1,), generator=g))
    labels = torch.randint(0, 2, (n,), generator=g).tolist()  # 2 labels: repeats are common
    if n + sum(a == b for a, b in zip(labels, labels[1:])) > t:
        labels = labels[:1]
    x = _posteriors(t, 2, seed)
    score, runs = _brute_force(x, labels)
    a = align(x, torch.tensor(labels))
    assert not a.spread
    assert [(int(f), int(e)) for f, e in zip(a.first, a.last)] == runs
    assert _runs_score(x, labels, a.first, a.last) == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_best_path_score_matches_the_run_dp(seed):
    g = torch.Generator().manual_seed(200 + seed)
    t, c = 14, 4
    labels = torch.randint(0, c, (5,), generator=g)
    labels[2] = labels[1]  # at least one repeat: a blank must separate them
    x = _posteriors(t, c, seed)
    a = align(x, labels)
    assert bool((a.first <= a.last).all()) and bool((a.last[:-1] < a.first[1:]).all())
    assert int(a.first[2]) > int(a.last[1]) + 1  # the repeat's blank
    assert _runs_score(x, labels.tolist(), a.first, a.last) == pytest.approx(
        _run_dp(x, labels.tolist()), abs=1e-4
    )
    # each label's score is its mean log posterior over its frames
    for i, lab in enumerate(labels.tolist()):
        frames = x[int(a.first[i]) : int(a.last[i]) + 1, lab]
        assert float(a.score[i]) == pytest.approx(float(frames.mean()), abs=1e-5)


def _hand_made(frame_labels: list[int], c: int, p: float = 0.9) -> torch.Tensor:
    """(T, c + 1) log posteriors putting `p` on each frame's label (c = blank)."""
    x = torch.full((len(frame_labels), c + 1), (1 - p) / c)
    for t, lab in enumerate(frame_labels):
        x[t, lab] = p
    return x.log()


def test_hand_made_posteriors_give_the_known_runs():
    b = 3  # blank
    x = _hand_made([b, b, 0, 0, 0, b, 1, 1, b, b, 2, b], 3)
    a = align(x, torch.tensor([0, 1, 2]))
    assert a.first.tolist() == [2, 6, 10] and a.last.tolist() == [4, 7, 10]
    assert torch.allclose(a.score, torch.full((3,), math.log(0.9)))
    assert a.frames.tolist() == [3, 2, 1]


def test_equal_labels_are_split_by_a_blank_and_back_to_back_ones_need_none():
    b = 2
    # "0 0": the posteriors say one long run of label 0; CTC must still split it by a blank.
    x = _hand_made([b, 0, 0, 0, 0, b], 2)
    a = align(x, torch.tensor([0, 0]))
    assert a.last[0] + 1 < a.first[1]
    assert int(a.first[0]) == 1 and int(a.last[1]) == 4
    # "0 1" back to back: no blank between is needed.
    x = _hand_made([0, 0, 1, 1], 2)
    a = align(x, torch.tensor([0, 1]))
    assert a.first.tolist() == [0, 2] and a.last.tolist() == [1, 3]


def test_labels_that_do_not_fit_are_spread_evenly():
    x = _posteriors(5, 3, 0)
    a = align(x, torch.tensor([0, 0, 1, 1]))  # 4 labels + 2 repeats > 5 frames: no CTC path
    assert a.spread and a.first.tolist() == [0, 1, 2, 3] and a.last.tolist() == [0, 1, 2, 4]
    a = align(x, torch.tensor([0, 1, 2, 0, 1, 2, 0]))  # more labels than frames: they share
    assert a.spread and a.first.tolist() == [0, 0, 1, 2, 2, 3, 4]
    assert bool((a.first <= a.last).all()) and int(a.last.max()) == 4
    exact = align(x, torch.tensor([0, 0, 1]))  # 3 labels + 1 repeat in 5 frames: a CTC path
    assert not exact.spread and int(exact.first[1]) > int(exact.last[0]) + 1
    tight = align(x[:4], torch.tensor([0, 0, 1]))  # exactly fits: label, blank, label, label
    assert not tight.spread and tight.first.tolist() == [0, 2, 3]


def test_empty_and_bad_inputs():
    x = _posteriors(5, 3, 0)
    a = align(x, torch.tensor([], dtype=torch.long))
    assert a.first.numel() == a.last.numel() == a.score.numel() == 0
    with pytest.raises(ValueError, match="blank"):
        align(x, torch.tensor([3]))
    with pytest.raises(ValueError, match="no frames"):
        align(x[:0], torch.tensor([0]))
    with pytest.raises(ValueError, match=r"expected \(T, C \+ 1\)"):
        align(x[None], torch.tensor([0]))
