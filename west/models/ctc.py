"""The CTC branch: one place for its blank, token table, loss, compression and prefix scores.

The projected speech frames (B, N, D) are scored against the LLM's own input embeddings,
one learned blank vector appended last: (B, N, V' + 1) logits, blank = V'. V' is the
LLM's vocabulary, or (`ctc_conf.vocab: train`) only the tokens of the training
transcripts (`CTCHead.fit_vocab`): a 50k-150k-way output shrinks to a few thousand, or
(`vocab: chars`) the LLM's single-character tokens of the characters in the training
transcripts: the branch spells, every LLM token is the sequence of its characters' labels
(`Spelling`), and a word never heard in training is still within reach. The token table
is saved with the trained weights.

Besides its loss the branch serves two ends:
- compression (`ctc_conf.compression`): the LLM reads one vector per CTC label run, not
  one per 100 ms (`compress`);
- joint CTC / LLM decoding: the LLM proposes tokens, the CTC prefix score says how well the
  audio supports each (`CTCPrefixScorer`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from west.distributed import is_partitioned

logger = logging.getLogger(__name__)

NEG = -1.0e10  # log 0 in prefix scores (no inf - inf = nan)


class CTCHead(nn.Module):
    """The learned blank and the optional restricted token table of the CTC branch.

    The LLM's embedding module is handed to each call, not held: it belongs to the LLM (and,
    under DeepSpeed ZeRO-3, its hooks gather the weight when it is called).
    """

    def __init__(
        self,
        dim: int,
        llm_vocab: int,
        weight: float = 1.0,
        vocab: str = "full",
        compression: str = "none",
    ):
        super().__init__()
        self.llm_vocab = llm_vocab
        self.weight = weight
        self.vocab = vocab
        self.compression = compression
        self.blank = nn.Parameter(torch.zeros(dim))
        # LLM token ids the branch scores (None: all), and token id -> CTC label index
        self.register_buffer("tokens", None)
        self.register_buffer("index", None, persistent=False)
        self.spelling: Spelling | None = None  # vocab chars: each LLM token's labels
        self.warned_short = False

    # ---- vocabulary -----------------------------------------------------------------
    def set_tokens(self, token_ids: Iterable[int], tokenizer=None) -> None:
        """Restrict the branch to these LLM tokens (saved with the trained weights).

        With `vocab: chars` they are single-character tokens, and the `tokenizer` spells
        every LLM token with them."""
        ids = torch.as_tensor(sorted(set(int(i) for i in token_ids)), dtype=torch.long)
        device = self.blank.device
        self.register_buffer("tokens", ids.to(device))
        index = torch.full((self.llm_vocab,), -1, dtype=torch.long)
        index[ids] = torch.arange(len(ids))
        self.register_buffer("index", index.to(device), persistent=False)
        if self.vocab == "chars":
            if tokenizer is None:
                raise ValueError("ctc_conf vocab chars: set_tokens needs the LLM's tokenizer")
            self.spelling = Spelling(tokenizer, ids.tolist())

    def fit_vocab(self, tokenizer, texts: Iterable[str]) -> None:
        """With `vocab: train`, score only the tokens of these training transcripts; with
        `vocab: chars`, only the single-character tokens of their characters."""
        if self.vocab == "train":
            ids = {i for t in texts for i in tokenizer(t, add_special_tokens=False).input_ids}
            self.set_tokens(ids)
            logger.info("CTC vocabulary: %d tokens of the training transcripts", len(ids))
        elif self.vocab == "chars":
            chars = sorted({c for t in texts for c in t})
            ids, lost = char_tokens(tokenizer, chars)
            if lost:
                logger.warning(
                    "CTC vocabulary: %d characters of the training transcripts are no single "
                    "LLM token and are left out of the CTC targets: %s",
                    len(lost),
                    "".join(lost[:50]),
                )
            self.set_tokens(ids.values(), tokenizer)
            logger.info("CTC vocabulary: %d characters of the training transcripts", len(ids))

    def token_ids(self, labels: torch.Tensor) -> torch.Tensor:
        """CTC label indices (from `logits`' argmax) -> LLM token ids."""
        return labels if self.tokens is None else self.tokens[labels]

    # ---- scores -------------------------------------------------------------------
    def token_table(self, embed: nn.Embedding) -> torch.Tensor:
        """(V', D): the embeddings of the tokens the branch scores (no blank)."""
        if self.tokens is None and not is_partitioned(embed.weight):
            return embed.weight
        # Through the embedding module: under ZeRO-3 its hooks gather the weight.
        ids = self.tokens
        if ids is None:
            ids = torch.arange(self.llm_vocab, device=self.blank.device)
        return embed(ids)

    def table(self, embed: nn.Embedding) -> torch.Tensor:
        """(V' + 1, D): the embeddings of the tokens the branch scores, blank last."""
        weight = self.token_table(embed)
        return torch.cat([weight, self.blank[None].to(weight.dtype)])

    def logits(self, speech: torch.Tensor, embed: nn.Embedding) -> torch.Tensor:
        """(B, N, D) -> (B, N, V' + 1): similarity to each token embedding, blank last.

        The tokens' and the blank's products are taken apart: the token embeddings are the
        frozen LLM's, so backward computes no gradient for them (a product over the whole
        table that a concatenation with the learned blank would ask for: a third of a CTC
        step's arithmetic)."""
        x = speech.float()
        tokens = x @ self.token_table(embed).float().T
        return torch.cat([tokens, x @ self.blank.float()[:, None]], dim=-1)

    def loss(
        self,
        speech: torch.Tensor,
        lens: torch.Tensor,
        text_ids: torch.Tensor,
        text_lens: torch.Tensor,
        embed: nn.Embedding,
        logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """speech (B, N, D), lens (B,); text_ids (B, L) LLM token ids, text_lens (B,) -> ().
        `logits`: this branch's logits of `speech`, when the caller has them already."""
        if self.tokens is not None:
            # Targets as CTC label indices; tokens (or characters) outside the CTC vocabulary
            # (unseen in training, so only in held-out data) are left out of the target.
            if self.spelling is not None:
                rows = [
                    self.spelling.spell(text_ids[i, : text_lens[i]]) for i in range(len(text_ids))
                ]
            else:
                rows = [self.index[text_ids[i, : text_lens[i]]] for i in range(len(text_ids))]
            rows = [r[r >= 0] for r in rows]
            text_lens = torch.tensor([len(r) for r in rows], device=text_ids.device)
            text_ids = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        short = text_lens.to(lens.device) > lens
        if bool(short.any()) and not self.warned_short:
            self.warned_short = True  # once per process
            i = int(short.nonzero()[0, 0])
            logger.warning(
                "CTC: %d of %d utterances in a batch have more labels than frames (%d > %d): "
                "their CTC loss is 0. Give the branch more frames (a lower "
                "encoder_projector_ds_rate) or fewer labels (ctc_conf vocab)",
                int(short.sum()),
                len(lens),
                int(text_lens[i]),
                int(lens[i]),
            )
        if logits is None:
            logits = self.logits(speech, embed)
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (N, B, V'+1)
        blank = log_probs.shape[-1] - 1
        return F.ctc_loss(log_probs, text_ids, lens, text_lens, blank=blank, zero_infinity=True)

    # ---- what the LLM reads, and joint decoding -----------------------------------
    def compress(
        self,
        speech: torch.Tensor,
        lens: torch.Tensor,
        embed: nn.Embedding,
        logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected frames as the LLM reads them: (B, N, D) -> (B, N', D), lens (B,).
        `logits`: this branch's logits of `speech`, when the caller has them already."""
        if self.compression == "none":
            return speech, lens
        if logits is None:
            logits = self.logits(speech, embed)
        table = self.table(embed).to(speech.dtype) if self.compression == "ctc_soft" else None
        return compress(speech, lens, logits, logits.shape[-1] - 1, table)

    def prefix_scorer(
        self,
        speech: torch.Tensor,
        lens: torch.Tensor,
        embed: nn.Embedding,
        vocab: int,
        stop_ids: list[int],
        logits: torch.Tensor | None = None,
    ) -> CTCPrefixScorer:
        """CTC prefix scores of these projected frames, for LLM token ids below `vocab` (the
        LLM's output size, which may exceed its input vocabulary); `logits` as in compress."""
        if logits is None:
            logits = self.logits(speech, embed)
        labels = self.token_labels(vocab, speech.device)
        # The best paths' tokens are always candidates.
        best_tokens = [self.best_path(row[: int(n)]) for row, n in zip(logits, lens)]
        return CTCPrefixScorer(logits.log_softmax(-1), lens, labels, stop_ids, best_tokens)

    def token_labels(self, vocab: int, device: torch.device | str | None = None) -> torch.Tensor:
        """(vocab, K) long: the CTC labels of each LLM token id below `vocab`, padded with -1
        (all -1: a token the branch cannot emit). K = 1 (the token's own label: full
        vocabulary, or `vocab: train`'s index) unless the branch spells (`vocab: chars`:
        `Spelling.table`). Joint decoding scores tokens by it, word alignment
        (west.timestamps) aligns them by it."""
        if self.spelling is not None:
            return self.spelling.table(vocab, device)
        device = self.blank.device if device is None else device
        index = torch.full((vocab,), -1, dtype=torch.long, device=device)
        if self.tokens is None:
            n = min(vocab, self.llm_vocab)
            index[:n] = torch.arange(n, device=device)
        else:
            n = min(vocab, len(self.index))
            index[:n] = self.index[:n]
        return index[:, None]

    def best_path(self, logits: torch.Tensor) -> list[int]:
        """One utterance's (N, V' + 1) logits -> the LLM token ids of its CTC best path
        (repeats merged, blanks dropped); with `vocab: chars`, its spelling read back as
        LLM tokens."""
        path = logits.argmax(-1).unique_consecutive()
        path = path[path != logits.shape[-1] - 1]
        if self.spelling is not None:
            text = self.spelling.text(path)
            return self.spelling.tokenizer(text, add_special_tokens=False).input_ids
        return self.token_ids(path).tolist()


def compress(
    frames: torch.Tensor,
    lens: torch.Tensor,
    logits: torch.Tensor,
    blank: int,
    table: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (B, N, D), lens (B,), logits (B, N, V + 1) -> (B, N', D) zero-padded, lens (B,).

    Frames whose most likely label is blank are dropped and runs of frames sharing a label
    are averaged (the CTC compressor of Wu et al., 2023, "On decoder-only architecture for
    speech-to-text and large language model integration"). With a `table` (V + 1, D) (the
    LLM's input embeddings plus the blank) each frame is first replaced by its CTC-posterior
    mix of those embeddings, which puts the speech on the token-embedding manifold the LLM
    was trained on: only the frames kept are mixed (most frames are blank).
    """
    best = logits.argmax(-1)
    rows = []
    for i in range(frames.shape[0]):
        n = int(lens[i])
        labels = best[i, :n]
        keep = labels != blank
        if not bool(keep.any()) and n > 0:
            # All blank: keep the frame most likely to be a token, so the LLM reads something.
            keep = torch.zeros_like(keep)
            keep[logits[i, :n, :blank].max(-1).values.argmax()] = True
        if table is None:
            kept = frames[i, :n][keep]
        else:
            kept = logits[i, :n][keep].softmax(-1).to(table.dtype) @ table
        starts = torch.ones_like(labels, dtype=torch.bool)
        starts[1:] = labels[1:] != labels[:-1]
        run = (torch.cumsum(starts.long(), 0) - 1)[keep]
        _, group = torch.unique_consecutive(run, return_inverse=True)
        m = int(group.max()) + 1 if group.numel() else 0
        summed = kept.new_zeros(m, kept.shape[1]).index_add(0, group, kept)
        count = torch.bincount(group, minlength=m).clamp(min=1).to(kept.dtype)
        rows.append(summed / count[:, None])
    out_lens = torch.tensor([r.shape[0] for r in rows], device=frames.device)
    out = frames.new_zeros(len(rows), max(int(out_lens.max()), 1), frames.shape[-1])
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out, out_lens


@dataclass
class PrefixState:
    """Per hypothesis: log P(prefix, ending in a label / in blank, at frame t), (R, T, 2);
    the prefix score psi (R,); the last CTC label (R,), -1 for the empty prefix."""

    r: torch.Tensor
    psi: torch.Tensor
    last: torch.Tensor


class CTCPrefixScorer:
    """CTC prefix scores for joint CTC / LLM decoding.

    The probability that a CTC path over the whole utterance starts with the transcript so
    far extended by a token (Watanabe et al., 2017, "Hybrid CTC/attention architecture for
    end-to-end speech recognition", Algorithm 2; ESPnet's hybrid decoding). Tokens the audio
    does not hold get a very low score, so a beam cannot drift into fluent text that was not
    said, and a prefix can only end where the audio does. A token may be several CTC labels
    (`vocab: chars`: its characters); the prefix is then extended by each in turn.

    Shapes: U utterances, T frames (padded: a padded frame is a certain blank, which leaves
    every prefix probability unchanged), R hypotheses, M candidate tokens per hypothesis,
    K labels per token at most. All values are natural-log probabilities; NEG stands for log 0.
    """

    def __init__(
        self,
        log_probs: torch.Tensor,
        lens: torch.Tensor,
        token_labels: torch.Tensor,
        stop_ids: list[int],
        best_tokens: list[list[int]] | None = None,
    ):
        """log_probs (U, T, C + 1): CTC log posteriors, blank last; lens (U,) frames;
        token_labels (V, K): the CTC labels of each LLM token id, padded with -1 (a token
        whose first is -1 scores log 0); stop_ids: the tokens that end a transcript (scored
        as the end of the audio); best_tokens: each utterance's tokens on its CTC best path,
        always candidates, so a token the audio holds is tried even where the LLM ranks it
        low."""
        u, t, c = log_probs.shape
        pad = torch.arange(t, device=lens.device)[None] >= lens[:, None]  # (U, T)
        x = log_probs.float().masked_fill(pad[..., None], NEG)
        x[..., c - 1] = x[..., c - 1].masked_fill(pad, 0.0)
        self.x = x
        self.blank = c - 1
        self.labels = token_labels
        n = (token_labels >= 0).sum(1)
        # each token's last label: the next token's first repeats it only across a blank
        self.last_label = token_labels.gather(1, (n - 1).clamp(min=0)[:, None])[:, 0]
        self.stop = torch.tensor(stop_ids, device=log_probs.device)
        rows = [sorted(set(r)) for r in best_tokens or [[]] * u]
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

    def _extend(
        self,
        utts: torch.Tensor,
        r_n: torch.Tensor,
        r_b: torch.Tensor,
        last: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One label more for hypotheses of utterances utts (R,): the prefixes' r_n, r_b
        (R, M, T) and last labels (R, M), -1 for empty; labels (R, M) -> the new r_n, r_b and
        log psi (R, M)."""
        # Only the frames' scores of these labels and of the blank are read, (R, M, T) and
        # (R, 1, T): never a copy of the whole (R, T, C + 1) table.
        xc = self.x[utts[:, None], :, labels]
        xb = self.x[utts, :, self.blank][:, None, :]
        # phi: probability mass a new label can start from (a repeat needs a blank between).
        total = torch.logaddexp(r_n, r_b)
        phi = torch.where((labels == last)[..., None], r_b, total)  # (R, M, T)
        new_n = torch.full_like(xc, NEG)
        new_b = torch.full_like(xc, NEG)
        new_n[..., 0] = torch.where(last < 0, xc[..., 0], torch.full_like(xc[..., 0], NEG))
        psi = new_n[..., 0].clone()
        for t in range(1, xc.shape[-1]):
            new_n[..., t] = torch.logaddexp(new_n[..., t - 1], phi[..., t - 1]) + xc[..., t]
            new_b[..., t] = torch.logaddexp(new_b[..., t - 1], new_n[..., t - 1]) + xb[..., t]
            psi = torch.logaddexp(psi, phi[..., t - 1] + xc[..., t])
        return new_n, new_b, psi

    def score(
        self, utts: torch.Tensor, state: PrefixState, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Extend hypothesis i (of utterance utts[i]) by each of tokens[i] (R, M).

        Returns log psi(prefix + token) - log psi(prefix), (R, M), and the new r (R, M, T, 2).
        """
        spelt = self.labels[tokens]  # (R, M, K)
        shape = (*tokens.shape, self.x.shape[1])
        r_n = state.r[:, None, :, 0].expand(shape)
        r_b = state.r[:, None, :, 1].expand(shape)
        last = state.last[:, None].expand(tokens.shape)
        psi = torch.full(tokens.shape, NEG, device=tokens.device)
        for k in range(spelt.shape[-1]):
            label = spelt[..., k]
            on = label >= 0
            if not bool(on.any()):
                break
            n, b, p = self._extend(utts, r_n, r_b, last, label.clamp(min=0))
            r_n = torch.where(on[..., None], n, r_n)
            r_b = torch.where(on[..., None], b, r_b)
            last = torch.where(on, label, last)
            psi = torch.where(on, p, psi)
        # Ending: the whole utterance is this prefix (padded frames are blank, so the last one).
        total = torch.logaddexp(state.r[:, -1, 0], state.r[:, -1, 1])[:, None]
        psi = torch.where(torch.isin(tokens, self.stop), total.expand_as(psi), psi)
        r = torch.stack([r_n, r_b], dim=-1)  # (R, M, T, 2)
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
            self.last_label[tokens],
        )


OUTSIDE = -2  # in a spelling: a character the CTC vocabulary lacks
MAX_SPELLING = 32  # labels; a longer token is out of reach of joint decoding


def char_tokens(tokenizer, chars: Iterable[str]) -> tuple[dict[str, int], list[str]]:
    """Each character's own LLM token (encoded alone, decoded back to itself, not shared);
    and the characters that have none."""
    ids: dict[str, int] = {}
    lost = []
    for c in chars:
        t = tokenizer(c, add_special_tokens=False).input_ids
        if len(t) == 1 and t[0] not in ids.values() and tokenizer.decode(t) == c:
            ids[c] = t[0]
        else:
            lost.append(c)
    return ids, lost


class Spelling:
    """LLM tokens as CTC labels, when the CTC branch scores characters (`vocab: chars`).

    `char_ids`: the single-character tokens the branch scores, sorted (label i is
    char_ids[i]). Text is spelt exactly from its decoded characters; the (V, K) label table
    for joint decoding is built once from every token's own text.
    """

    def __init__(self, tokenizer, char_ids: list[int]):
        self.tokenizer = tokenizer
        self.chars = [tokenizer.decode([i]) for i in char_ids]
        self.label = {c: i for i, c in enumerate(self.chars)}
        self._table: torch.Tensor | None = None

    def labels(self, text: str) -> list[int]:
        """Each character's CTC label, OUTSIDE for a character the branch lacks."""
        return [self.label.get(c, OUTSIDE) for c in text]

    def spell(self, token_ids: torch.Tensor) -> torch.Tensor:
        """LLM token ids (L,) -> the CTC labels of their text."""
        out = self.labels(self.tokenizer.decode(token_ids.tolist()))
        return torch.tensor(out, dtype=torch.long, device=token_ids.device)

    def text(self, labels: torch.Tensor) -> str:
        """CTC labels -> the characters they spell."""
        return "".join(self.chars[i] for i in labels.tolist())

    def table(self, vocab: int, device: torch.device | str | None = None) -> torch.Tensor:
        """(vocab, K): each token id's labels, padded with -1; all -1 for a token with a
        character outside the vocabulary, no characters, or more than MAX_SPELLING. Built
        once and kept on the device last asked for (decoding asks once per batch)."""
        if self._table is None or self._table.shape[0] != vocab:
            n = min(vocab, len(self.tokenizer))
            texts = self.tokenizer.batch_decode([[i] for i in range(n)])
            rows = [self.labels(t) for t in texts]
            rows = [r if 0 < len(r) <= MAX_SPELLING and OUTSIDE not in r else [] for r in rows]
            width = max(1, max(len(r) for r in rows))
            table = torch.full((vocab, width), -1, dtype=torch.long)
            for i, r in enumerate(rows):
                table[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            self._table = table
        if device is not None:
            self._table = self._table.to(device)  # itself when already there
        return self._table
