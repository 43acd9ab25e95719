"""Batched greedy and beam search over a Hugging Face causal LM that reads `inputs_embeds`.

The prompts arrive left-padded. A prompt start that every utterance shares (the chat
template's system turn and user tag) can be handed over apart: it is read once for the whole
batch, at batch size 1, and its KV cache copied to every row. Each utterance's own part is
read once (its beams share that prefill), the output layer runs on the last position only,
and an utterance that is finished leaves the batch: its rows are dropped from the KV cache,
so it costs nothing more. Every utterance stops at its own token cap.

Beam search keeps the semantics of transformers' default beam search (length_penalty 1,
early_stopping False): the same candidates (the top max(2, 1 + stop ids) x beams
continuations), the same finished-hypothesis bookkeeping (only candidates ranked within the
top `beams` may finish; score = sum of log-probs / generated length, end token included)
and the same stopping rule, so an utterance gets the hypothesis that
`generate(num_beams=k, do_sample=False, max_new_tokens=cap)` gives it alone, unless it loops.

Neither search writes a repetition loop (west.models.repetition: one block of tokens three
times or more in a row): greedy search ends a row at the token that closes one, keeping the
first copy; beam search never extends a beam by such a token, so the beam takes the stop
token or other words instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformers import DynamicCache, GenerationConfig
from transformers.cache_utils import DynamicLayer

from west.models.context import ContextBias
from west.models.ctc import CTCPrefixScorer
from west.models.repetition import MAX_PERIOD, MIN_REPEATS, loop_start

NEG = -1.0e9  # transformers' score for an impossible beam; the same value keeps ties the same

# Generation-config fields that change which token HF's greedy or beam search picks; this
# search applies none of them (they are for chat, not transcription).
HF_ONLY_SETTINGS = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "sequence_bias",
    "suppress_tokens",
    "begin_suppress_tokens",
    "min_length",
    "min_new_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "length_penalty",
    "early_stopping",
)


def ignored_settings(llm: torch.nn.Module) -> list[str]:
    """The `llm.generation_config` settings that HF generate would apply and this search does not."""
    config = getattr(llm, "generation_config", None)
    if config is None:
        return []
    default = GenerationConfig()
    return [
        f"{k}={getattr(config, k)!r}"
        for k in HF_ONLY_SETTINGS
        if getattr(config, k, None) != getattr(default, k, None)
    ]


class GrowingLayer(DynamicLayer):
    """A KV-cache layer that writes each step into a buffer grown by doubling.

    transformers' DynamicLayer concatenates the whole cache with the new step every step:
    quadratic copying, measured at 22 % of a batch-8 greedy decode on CPU. Here a step
    writes in place and the cache is a view of the filled part.
    """

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._k = self._v = None
        self._n = 0

    def _view(self) -> None:
        self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        need = self._n + key_states.shape[-2]
        if self._k is None or need > self._k.shape[-2]:
            grown = []
            for old, new in ((self._k, key_states), (self._v, value_states)):
                buf = new.new_empty(*new.shape[:2], max(2 * need, 64), new.shape[-1])
                if self._n:
                    buf[..., : self._n, :] = old[..., : self._n, :]
                grown.append(buf)
            self._k, self._v = grown
        self._k[..., self._n : need, :] = key_states
        self._v[..., self._n : need, :] = value_states
        self._n = need
        self._view()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        # index_select, not advanced indexing (`buf[indices]`): the same rows, copied whole;
        # measured 10 times faster on CPU, where beam search reorders every layer each step.
        if self.is_initialized and self._n:
            self._k = torch.index_select(self._k, 0, indices)
            self._v = torch.index_select(self._v, 0, indices)
            self._view()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized and self._n:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._view()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("GrowingLayer is for WeST's search, which never crops")

    def reset(self) -> None:
        super().reset()
        self._k = self._v = None
        self._n = 0


class Rows:
    """The sequences the LM is running: their KV cache, attention mask and next positions."""

    def __init__(
        self,
        llm: torch.nn.Module,
        inputs: torch.Tensor,
        mask: torch.Tensor,
        prefix: torch.Tensor | None = None,
        step_hook: Callable[[], None] | None = None,
    ):
        """Prefill: `prefix` (P, D) shared by every row, then inputs (B, L, D) left-padded, mask
        (B, L); `self.logits` is (B, V).

        The sequences are [prefix][padding][own part]: positions count real tokens only, so
        RoPE sees what it would see unpadded, and the padding is masked out.

        `step_hook`, if given, is called before every decoding step: a caller may do other
        work there (west-serve decodes a waiting request's batch while this one pauses).
        """
        self.step_hook = step_hook
        base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
        self.llm = llm
        self.cache = DynamicCache(config=base.config)
        self.cache.layers = [
            GrowingLayer() if type(layer) is DynamicLayer else layer for layer in self.cache.layers
        ]
        self.last_only = (
            {"logits_to_keep": 1}
            if "logits_to_keep" in inspect.signature(base.forward).parameters
            else {}
        )
        b, shared = inputs.shape[0], 0 if prefix is None else prefix.shape[0]
        if shared:  # its KV cache only: the decoder without the output layer
            positions = torch.arange(shared, device=inputs.device)[None]
            base.get_decoder()(
                inputs_embeds=prefix[None].to(inputs.dtype),
                position_ids=positions,
                cache=self.cache,
                use_cache=True,
            )
            self.cache.batch_repeat_interleave(b)
        own = mask.long()
        self.mask = torch.cat([own.new_ones(b, shared), own], dim=1)
        positions = shared + (own.cumsum(-1) - 1).clamp(min=0)
        self.next_pos = shared + own.sum(-1)  # (B,)
        self.logits = self._forward(inputs_embeds=inputs, position_ids=positions)

    def _forward(self, **inputs) -> torch.Tensor:
        # Without padding the mask is left out, as HF generate does: the same attention path.
        mask = None if bool(self.mask.all()) else self.mask
        out = self.llm(
            attention_mask=mask, cache=self.cache, use_cache=True, **self.last_only, **inputs
        )
        return out.logits[:, -1].float()

    def __len__(self) -> int:
        return self.mask.shape[0]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row, (R,) -> next-token logits (R, V)."""
        if self.step_hook is not None:
            self.step_hook()
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self), 1)], dim=1)
        logits = self._forward(input_ids=tokens[:, None], position_ids=self.next_pos[:, None])
        self.next_pos = self.next_pos + 1
        return logits

    def select(self, rows: torch.Tensor) -> None:
        """Keep these rows, in this order (repeats allowed): drop, reorder or fan out beams."""
        self.cache.batch_select_indices(rows)
        self.mask, self.next_pos = self.mask[rows], self.next_pos[rows]


def greedy_search(
    rows: Rows,
    caps: list[int],
    stop_ids: list[int],
    loop_guard: bool = True,
    context: ContextBias | None = None,
) -> list[list[int]]:
    """Argmax decoding; a row that ends (stop token, its cap, or, with `loop_guard`, a
    repetition loop, cut to its first copy: west.models.repetition) leaves the batch.
    With `context`, the argmax of log-probabilities plus the hotword bonuses."""
    out: list[list[int]] = [[] for _ in caps]
    live = list(range(len(caps)))  # the utterance each running row belongs to
    stop = torch.tensor(stop_ids, device=rows.logits.device)
    states = context.initial(live) if context is not None else None
    logits = rows.logits
    while True:
        if context is not None:
            logits = F.log_softmax(logits, dim=-1) + context.deltas(states)
        tokens = logits.argmax(-1)
        if context is not None:
            states = context.advance(states, tokens.tolist())
        keep = []
        for r, (tok, ended) in enumerate(zip(tokens.tolist(), torch.isin(tokens, stop).tolist())):
            u = live[r]
            if not ended:
                out[u].append(tok)
                start = loop_start(out[u]) if loop_guard else None
                if start is not None:
                    del out[u][start:]
                elif len(out[u]) < caps[u]:
                    keep.append(r)
        if not keep:
            return out
        if len(keep) < len(live):
            index = torch.tensor(keep, device=tokens.device)
            rows.select(index)
            tokens, live = tokens[index], [live[r] for r in keep]
            if context is not None:
                states = [states[r] for r in keep]
        logits = rows.step(tokens)


def beam_search(
    rows: Rows,
    caps: list[int],
    stop_ids: list[int],
    num_beams: int,
    ctc: CTCPrefixScorer | None = None,
    ctc_weight: float = 0.0,
    loop_guard: bool = True,
    context: ContextBias | None = None,
) -> list[list[int]]:
    """Beam search (HF's default semantics, see module doc); a finished utterance leaves the batch.
    With `loop_guard`, no beam is extended by a token that closes a repetition loop.

    Tensors are (U, K, ...) over the U utterances still running and their K beams; `rows`
    holds U x `fan` sequences: one per utterance after the prefill, K afterwards.

    With `ctc`, a token's score is (1 - ctc_weight) x the LLM's log-probability + ctc_weight
    x the CTC prefix score it adds (`west.models.ctc`), over the LLM's best tokens
    and the stop tokens; the other tokens are out of the search.

    With `context` (hotwords, west.models.context), each token's score also gets its hotword
    bonus; with `ctc`, the tokens that continue a hypothesis's hotword match are candidates
    too, the LLM's best are ranked with the bonus, a hotword token's LLM log-probability is
    raised to `context.floor` and a match starts only where the CTC prefix score of its first
    token is at least `context.gate`.
    """
    k, device = num_beams, rows.logits.device
    n_cand = max(2, 1 + len(stop_ids)) * k
    prefix = ctc.initial(torch.arange(len(caps), device=device)) if ctc is not None else None
    stops = torch.tensor(stop_ids, device=device)
    length = max(caps)
    live = torch.arange(len(caps), device=device)
    cap = torch.tensor(caps, device=device)
    stop = torch.tensor(stop_ids, device=device)
    run_seqs = torch.zeros(len(caps), k, length, dtype=torch.long, device=device)
    run_scores = torch.full((len(caps), k), NEG, device=device)
    run_scores[:, 0] = 0.0  # the beams start equal: only the first one may spread
    fin_seqs, fin_scores = run_seqs.clone(), torch.full_like(run_scores, NEG)
    fin_lens = torch.zeros_like(run_seqs[:, :, 0])
    fin_ok = torch.zeros_like(run_scores, dtype=torch.bool)
    out: list[list[int]] = [[] for _ in caps]
    states = context.initial(range(len(caps))) if context is not None else None
    logits, fan = rows.logits, 1
    for t in range(length):
        u, vocab = len(live), logits.shape[-1]
        logp = F.log_softmax(logits, dim=-1)
        bias = context.deltas(states) if context is not None else None
        if ctc is not None:
            row_utts = live.repeat_interleave(fan)
            tops = logp.topk(min(n_cand, vocab)).indices
            # candidates: the LLM's best, the stop tokens, the CTC best path's tokens (and,
            # with hotwords, the best with their bonus and the tokens that continue a match)
            extra = [stops.expand(len(logp), -1), ctc.best_tokens[row_utts]]
            if context is not None:
                extra.append((logp + bias).topk(min(n_cand, vocab)).indices)
                extra.append(padded(context.continuations(states), stop_ids[0], device))
            cand = torch.cat([tops, *extra], 1)
            deltas, prefix_r = ctc.score(row_utts, prefix, cand)
            llm = logp.gather(1, cand)
            if bias is not None:
                # The LLM never heard the names of a list: its hotword tokens are at least
                # context.floor likely, and the CTC prefix score decides. A match starts only
                # where the audio supports its first token (context.gate): an ordinary word
                # of the list the LLM likes is not written where it was not said.
                heard = deltas >= context.gate
                start = context.starts(states, cand)
                hot = (start > 0) & heard | context.continues(states, cand)
                llm = torch.where(hot, llm.clamp(min=context.floor), llm)
            joint = (1 - ctc_weight) * llm + ctc_weight * deltas
            if bias is not None:
                joint = joint + bias.gather(1, cand) - start * ~heard
            logp = torch.full_like(logp, NEG).scatter(1, cand, joint)
        elif bias is not None:
            logp = logp + bias
        logp = logp.view(u, fan, vocab).expand(u, k, vocab)
        top, index = (logp + run_scores[..., None]).reshape(u, k * vocab).topk(n_cand)
        parent, tokens = index // vocab, index % vocab
        seqs = run_seqs.gather(1, parent[..., None].expand(-1, -1, length)).clone()
        seqs[:, :, t] = tokens
        ends = torch.isin(tokens, stop) | (t + 1 >= cap[live])[:, None]
        if loop_guard:
            top = top.masked_fill(closes_loop(seqs, t, ~torch.isin(tokens, stop)), NEG)
        # The best k candidates that did not end run on.
        open_scores = top + ends.float() * NEG
        best = open_scores.topk(k).indices
        run_seqs = seqs.gather(1, best[..., None].expand(-1, -1, length))
        run_scores, run_parent = open_scores.gather(1, best), parent.gather(1, best)
        # Candidates ranked within the top k that ended compete for the k finished slots.
        new = ends.clone()
        new[:, k:] = False
        merged = torch.cat([fin_scores, top / (t + 1) + (~new).float() * NEG], dim=1)
        pick = merged.topk(k).indices
        fin_scores = merged.gather(1, pick)
        fin_seqs = torch.cat([fin_seqs, seqs], 1).gather(1, pick[..., None].expand(-1, -1, length))
        fin_lens = torch.cat([fin_lens, torch.full_like(tokens, t + 1)], 1).gather(1, pick)
        fin_ok = torch.cat([fin_ok, new], 1).gather(1, pick)
        # Done: every candidate ended (the cap), or the k slots are full and the best open
        # beam, at this length, scores no better than the worst of them (HF's heuristic).
        worst = torch.where(fin_ok, fin_scores.min(1, keepdim=True).values, NEG)
        improvable = (run_scores[:, :1] / (t + 1) > worst).any(1)
        done = ends.all(1) | ~improvable
        for i in done.nonzero().flatten().tolist():
            seq = fin_seqs[i, 0, : fin_lens[i, 0]].tolist()
            out[int(live[i])] = seq[:-1] if seq and seq[-1] in stop_ids else seq
        going = (~done).nonzero().flatten()
        if len(going) == 0:
            break
        live, run_seqs, run_scores = live[going], run_seqs[going], run_scores[going]
        fin_seqs, fin_scores = fin_seqs[going], fin_scores[going]
        fin_lens, fin_ok = fin_lens[going], fin_ok[going]
        parents = (going[:, None] * fan + run_parent[going]).flatten()
        rows.select(parents)
        chosen = run_seqs[:, :, t].flatten()
        if ctc is not None:  # each chosen token's place among its parent's candidates
            slots = (cand[parents] == chosen[:, None]).int().argmax(1)
        if context is not None:
            may_start = heard[parents, slots].tolist() if ctc is not None else None
            states = context.advance(
                [states[p] for p in parents.tolist()], chosen.tolist(), may_start
            )
        if ctc is not None:
            prefix = ctc.advance(prefix, parents, slots, prefix_r, deltas, chosen)
        logits, fan = rows.step(chosen), k
    return out


def padded(rows: list[list[int]], pad: int, device: torch.device) -> torch.Tensor:
    """Lists of token ids as one (R, max(1, longest)) tensor, padded with `pad`."""
    width = max(1, max(len(r) for r in rows))
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)


def closes_loop(seqs: torch.Tensor, t: int, check: torch.Tensor) -> torch.Tensor:
    """(U, M) bool: whether candidate sequence seqs[u, m, : t + 1] ends in a repetition loop
    (west.models.repetition), for the candidates where `check` (U, M) is True.

    Only a candidate whose new token repeats one of the MAX_PERIOD before it can close a
    loop: that test runs on the whole batch at once, the exact one on the few that pass."""
    found = torch.zeros_like(check)
    periods = min(MAX_PERIOD, t // MIN_REPEATS)
    if periods < 1:
        return found
    back = seqs[:, :, t - periods : t].flip(-1)  # the token 1, 2, ... positions back
    maybe = (back == seqs[:, :, t : t + 1]).any(-1) & check
    for u, m in maybe.nonzero().tolist():
        found[u, m] = loop_start(seqs[u, m, : t + 1].tolist()) is not None
    return found


def search(
    llm: torch.nn.Module,
    inputs: torch.Tensor,
    mask: torch.Tensor,
    caps: list[int],
    stop_ids: list[int],
    num_beams: int = 1,
    ctc: CTCPrefixScorer | None = None,
    ctc_weight: float = 0.0,
    prefix: torch.Tensor | None = None,
    loop_guard: bool = True,
    step_hook: Callable[[], None] | None = None,
    context: ContextBias | None = None,
) -> list[list[int]]:
    """inputs (B, L, D) left-padded, mask (B, L) -> each utterance's tokens, stop token left out.

    `prefix` (P, D): embeddings that come before every row's inputs, read once for the batch.
    Utterance i gets at most caps[i] tokens. With `ctc` and ctc_weight > 0, joint CTC / LLM
    scores (greedy is then a beam of 1). `loop_guard` False lets repetition loops run to the
    cap (to compare with transformers' generate, or to measure what the guard does).
    `step_hook`: called before every decoding step (Rows). `context`: hotword bonuses
    (west.models.context), one list per utterance.
    """
    if len(caps) != inputs.shape[0] or min(caps) < 1:
        raise ValueError(f"need one cap >= 1 per utterance, got {caps} for {inputs.shape[0]}")
    rows = Rows(llm, inputs, mask, prefix, step_hook)
    if ctc is not None and ctc_weight > 0:
        return beam_search(rows, caps, stop_ids, num_beams, ctc, ctc_weight, loop_guard, context)
    if num_beams == 1:
        return greedy_search(rows, caps, stop_ids, loop_guard, context)
    return beam_search(rows, caps, stop_ids, num_beams, loop_guard=loop_guard, context=context)
