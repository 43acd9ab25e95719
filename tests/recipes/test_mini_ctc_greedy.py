"""examples/mini/local/ctc_greedy.py: the CTC best path, repeats merged and blanks dropped."""

from __future__ import annotations

import torch
from ctc_greedy import greedy_labels


def one_hot(path: list[int], vocab: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(path), vocab + 1).float()


def test_greedy_labels_merge_repeats_and_drop_blanks():
    blank = 4
    # a a _ a b b _ _ c  ->  a a b c   (a blank separates the two a's)
    path = [0, 0, blank, 0, 1, 1, blank, blank, 2]
    assert greedy_labels(one_hot(path, 4)) == [0, 0, 1, 2]
    assert greedy_labels(one_hot([blank] * 5, 4)) == []
    assert greedy_labels(one_hot([3], 4)) == [3]
