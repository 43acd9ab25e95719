"""CTC prefix scores for joint CTC / LLM decoding.

The LLM proposes the next token; the CTC branch says how well the audio supports the
transcript so far extended by that token: the probability that a CTC path over the whole
utterance starts with that prefix (Watanabe et al., 2017, "Hybrid CTC/attention
architecture for end-to-end speech recognition", Algorithm 2; ESPnet's hybrid decoding).
Tokens the audio does not hold get a very low score, so a beam cannot drift into fluent
text that was not said, and a prefix can only end where the audio does.

Shapes: U utterances, T frames (padded: a padded frame is a certain blank, which leaves
every prefix probability unchanged), R hypotheses, M candidate tokens per hypothesis.
All values are natural-log probabilities; NEG stands for log 0 (no inf - inf = nan).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG = -1.0e10


@dataclass
class PrefixState:
    """Per hypothesis: log P(prefix, ending in a label / in blank, at frame t), (R, T, 2);
    the prefix score psi (R,); the last CTC label (R,), -1 for the empty prefix."""

    r: torch.Tensor
    psi: torch.Tensor
    last: torch.Tensor


class CTCPrefixScorer:
    def __init__(
        self,
        log_probs: torch.Tensor,
        lens: torch.Tensor,
        token_index: torch.Tensor,
        stop_ids: list[int],
    ):
        """log_probs (U, T, C + 1): CTC log posteriors, blank last; lens (U,) frames;
        token_index (V,): the CTC label of each LLM token id, -1 for none (scores log 0);
        stop_ids: the tokens that end a transcript (scored as the end of the audio)."""
        u, t, c = log_probs.shape
        pad = torch.arange(t, device=lens.device)[None] >= lens[:, None]  # (U, T)
        x = log_probs.float().masked_fill(pad[..., None], NEG)
        x[..., c - 1] = x[..., c - 1].masked_fill(pad, 0.0)
        self.x = x
        self.blank = c - 1
        self.index = token_index
        self.stop = torch.tensor(stop_ids, device=log_probs.device)
        # Each utterance's CTC best-path tokens (as LLM ids; padded with a stop id): always
        # candidates, so a token the audio holds is tried even where the LLM ranks it low.
        label_tokens = torch.full((c,), -1, dtype=torch.long, device=token_index.device)
        known = (token_index >= 0).nonzero().squeeze(1)
        label_tokens[token_index[known]] = known  # the blank (last) stays -1
        best = label_tokens[x.argmax(-1)]  # (U, T): LLM ids, -1 for blank
        rows = [b[: int(n)].unique() for b, n in zip(best, lens)]  # sorted
        rows = [r[r >= 0].tolist() for r in rows]
        width = max(1, max(len(r) for r in rows))
        self.best_tokens = torch.tensor(
            [r + [stop_ids[0]] * (width - len(r)) for r in rows], device=log_probs.device
        )

    def initial(self, utts: torch.Tensor) -> PrefixState:
        """The empty prefix of each utterance in `utts` (R,)."""
        blank = self.x[utts, :, self.blank].cumsum(-1)  # all blank up to t
        r = torch.stack([torch.full_like(blank, NEG), blank], dim=-1)
        zero = torch.zeros(len(utts), device=blank.device)
        return PrefixState(r, zero, torch.full_like(utts, -1))

    def score(
        self, utts: torch.Tensor, state: PrefixState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Extend hypothesis i (of utterance utts[i]) by each of tokens[i] (R, M).

        Returns log psi(prefix + token) - log psi(prefix), (R, M), and the new r (R, M, T, 2).
        """
        x = self.x[utts]  # (R, T, C + 1)
        r_n, r_b = state.r[..., 0], state.r[..., 1]  # (R, T)
        labels = self.index[tokens]  # (R, M)
        known = labels >= 0
        xc = x.gather(2, labels.clamp(min=0)[:, None, :].expand(-1, x.shape[1], -1))  # (R, T, M)
        xc = xc.masked_fill(~known[:, None, :], NEG)
        xb = x[..., self.blank]  # (R, T)
        # phi: probability mass a new label can start from (a repeat needs a blank between).
        total = torch.logaddexp(r_n, r_b)
        same = labels == state.last[:, None]  # (R, M)
        phi = torch.where(same[:, None, :], r_b[..., None], total[..., None])  # (R, T, M)
        n_frames = x.shape[1]
        new_n = torch.full_like(xc, NEG)
        new_b = torch.full_like(xc, NEG)
        empty = (state.last < 0)[:, None]
        new_n[:, 0] = torch.where(empty, xc[:, 0], torch.full_like(xc[:, 0], NEG))
        psi = new_n[:, 0].clone()
        for t in range(1, n_frames):
            new_n[:, t] = torch.logaddexp(new_n[:, t - 1], phi[:, t - 1]) + xc[:, t]
            new_b[:, t] = torch.logaddexp(new_b[:, t - 1], new_n[:, t - 1]) + xb[:, t][:, None]
            psi = torch.logaddexp(psi, phi[:, t - 1] + xc[:, t])
        # Ending: the whole utterance is this prefix (padded frames are blank, so the last one).
        ends = torch.isin(tokens, self.stop)
        psi = torch.where(ends, total[:, -1:].expand_as(psi), psi)
        r = torch.stack([new_n, new_b], dim=-1).transpose(1, 2)  # (R, M, T, 2)
        return psi - state.psi[:, None], r

    def advance(
        self,
        state: PrefixState,
        parents: torch.Tensor,
        slots: torch.Tensor,
        r: torch.Tensor,
        deltas: torch.Tensor,
        tokens: torch.Tensor,
    ) -> PrefixState:
        """The states of the chosen extensions: hypothesis parents[j] by its candidate slots[j]."""
        return PrefixState(
            r[parents, slots],
            state.psi[parents] + deltas[parents, slots],
            self.index[tokens],
        )
