"""west.models.search against transformers' generate: tiny random LLMs, real speech prompts.

Equality is asserted token for token. The two searches make the same float32 choices from
the same logits; what can differ is the last bit of a logit computed at another batch size
(HF prefills every beam, we prefill once; our batch shrinks as rows finish). That could only
flip a choice between two candidates tied to within rounding, which the tiny LLMs (built
with wide logits) do not produce on these inputs, so nothing weaker than equality is needed.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from west.data.batching import collate
from west.data.dataset import SpeechDataset, read_data, validate
from west.models.build import build_model
from west.models.search import ignored_settings, search

N_UTTS = 6
CROWD = (101, 202, 303)  # extra stop ids, for tests that need many


def _model(model_args, llm_dir, seed=0, lora=False):
    config = dataclasses.replace(model_args, llm_model_name_or_path=str(llm_dir))
    if lora:
        config = dataclasses.replace(config, lora_rank=4, lora_target_modules="q_proj,v_proj")
    torch.manual_seed(seed)
    model = build_model(config).eval()
    if lora:
        with torch.no_grad():  # as if trained: lora_B is no longer zero
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.fixture(scope="module")
def qwen(model_args, tiny_llm):
    return _model(model_args, tiny_llm)


@pytest.fixture(scope="module")
def utts(speech_dir):
    return validate(read_data(str(speech_dir / "data.jsonl")))[:N_UTTS]


def _batch(model, utts, n):
    dataset = SpeechDataset(utts, model.encoder.n_mels, model.tokenizer)
    return collate([dataset[i] for i in range(n)])


@torch.inference_mode()
def _prompts(model, utts) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, L, D) prompt embeddings and (B, L) mask, as `generate` builds them."""
    batch = _batch(model, utts, len(utts))
    speech, lens = model.speech_embeddings(batch["mel"], batch["mel_lens"])
    inputs, mask, _ = model._assemble(speech, lens, None, left_pad=True)
    return inputs, mask


def _alone(inputs, mask, i):
    n = int(mask[i].sum())
    return inputs[i : i + 1, -n:], mask[i : i + 1, -n:]


def _cut(row: list[int], stop_ids) -> list[int]:
    return row[: next((j for j, t in enumerate(row) if t in stop_ids), len(row))]


@torch.inference_mode()
def _hf(model, inputs, mask, stop_ids, max_new_tokens, num_beams=1) -> list[list[int]]:
    out = model.llm.generate(
        inputs_embeds=inputs,
        attention_mask=mask,
        num_beams=num_beams,
        do_sample=False,
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_ids,
        pad_token_id=model.tokenizer.pad_token_id,
    )
    return [_cut(row.tolist(), stop_ids) for row in out]


def _split_prefix(model, inputs, mask):
    """The shared prompt start taken out of left-padded rows: (prefix, rest, rest mask)."""
    p = len(model.prompt.prefix_ids)
    rest, rest_mask = inputs[:, p:].clone(), mask[:, p:].clone()
    for i in range(len(inputs)):
        start = int((mask[i] == 0).sum())  # the row's left padding
        rest[i, start:], rest_mask[i, :start] = inputs[i, start + p :], 0
        rest[i, :start] = 0
    first = int((mask[0] == 0).sum())
    return inputs[0, first : first + p], rest, rest_mask


@torch.inference_mode()
def _ours(model, inputs, mask, stop_ids, caps, num_beams=1, shared=True) -> list[list[int]]:
    """WeST's search; `shared`: as `generate` runs it, the prompt start read once per batch."""
    if not shared:
        return search(model.llm, inputs, mask, caps, stop_ids, num_beams)
    prefix, rest, rest_mask = _split_prefix(model, inputs, mask)
    return search(model.llm, rest, rest_mask, caps, stop_ids, num_beams, prefix=prefix)


@contextlib.contextmanager
def end_within(model, delta: float | None, ends: list[int] | None = None):
    """The end token's logit set to `delta` under the best one, so beams end at varied lengths.

    A random LLM hardly ever ends on its own; the bookkeeping of finished hypotheses and the
    stopping rule are only exercised when it does. With `ends`, the j-th of those tokens is
    set (j + 1) x `delta` under the best. The hook is on the output layer, which both
    searches call.
    """
    if delta is None:
        yield
        return
    ends = ends or [model.prompt.end_id]

    def hook(module, args, logits):
        logits = logits.clone()
        best = logits.max(-1).values
        for j, end in enumerate(ends):
            logits[..., end] = best - (j + 1) * delta
        return logits

    handle = model.llm.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _early_stops(model, inputs, mask, n=20) -> list[int]:
    """Stop ids that make greedy rows end early, at different steps: tokens they emit."""
    free = _ours(model, inputs, mask, model.stop_ids, [n] * len(inputs))
    return sorted(set(model.stop_ids) | {free[1][4], free[3][1]})


@pytest.mark.parametrize(
    "arch, lora", [("qwen2", False), ("qwen2", True), ("llama", False), ("llama", True)]
)
def test_greedy_equals_hf(model_args, tiny_llm, tiny_llama, utts, arch, lora):
    model = _model(model_args, tiny_llm if arch == "qwen2" else tiny_llama, lora=lora)
    inputs, mask = _prompts(model, utts)
    stops = _early_stops(model, inputs, mask)
    ours = _ours(model, inputs, mask, stops, [20] * N_UTTS)
    assert ours == _hf(model, inputs, mask, stops, 20)  # batched
    assert _ours(model, inputs, mask, stops, [20] * N_UTTS, shared=False) == ours
    assert any(len(o) < 20 for o in ours) and any(len(o) == 20 for o in ours)
    for i in (0, 3):  # batch 1
        x, m = _alone(inputs, mask, i)
        assert _ours(model, x, m, stops, [20]) == _hf(model, x, m, stops, 20) == [ours[i]]


@pytest.mark.parametrize("num_beams", [3, 5])
@pytest.mark.parametrize(
    "arch, seed, delta",
    [("qwen2", 0, None), ("qwen2", 0, 0.5), ("qwen2", 1, 1.0), ("llama", 2, 0.5)],
)
def test_beam_equals_hf_at_batch1(
    model_args, tiny_llm, tiny_llama, utts, num_beams, arch, seed, delta
):
    model = _model(model_args, tiny_llm if arch == "qwen2" else tiny_llama, seed=seed)
    inputs, mask = _prompts(model, utts)
    lengths = []
    with end_within(model, delta):
        for i in range(N_UTTS):
            x, m = _alone(inputs, mask, i)
            ours = _ours(model, x, m, model.stop_ids, [16], num_beams)
            assert ours == _hf(model, x, m, model.stop_ids, 16, num_beams), f"utterance {i}"
            lengths.append(len(ours[0]))
    if delta is not None:  # hypotheses that ended before the cap were compared too
        assert min(lengths) < 16, lengths


def test_lora_beam_equals_hf(model_args, tiny_llm, utts):
    model = _model(model_args, tiny_llm, seed=3, lora=True)
    inputs, mask = _prompts(model, utts)
    with end_within(model, 0.5):
        for i in (0, 2, 5):
            x, m = _alone(inputs, mask, i)
            assert _ours(model, x, m, model.stop_ids, [16], 3) == _hf(
                model, x, m, model.stop_ids, 16, 3
            )


@pytest.mark.parametrize("num_beams", [3, 5])
def test_batched_beam_equals_batch1(qwen, utts, num_beams):
    inputs, mask = _prompts(qwen, utts)
    caps = [16, 9, 16, 4, 12, 16]
    with end_within(qwen, 0.5):
        batched = _ours(qwen, inputs, mask, qwen.stop_ids, caps, num_beams)
        for i in range(N_UTTS):
            x, m = _alone(inputs, mask, i)
            assert _ours(qwen, x, m, qwen.stop_ids, [caps[i]], num_beams) == [batched[i]]
        unshared = _ours(qwen, inputs, mask, qwen.stop_ids, caps, num_beams, shared=False)
        assert unshared == batched
    assert len({len(b) for b in batched}) > 2  # utterances ended at different steps


def test_each_row_stops_at_its_cap(qwen, utts):
    inputs, mask = _prompts(qwen, utts)
    caps = [3, 12, 1, 7, 12, 5]
    free = _ours(qwen, inputs, mask, qwen.stop_ids, [12] * N_UTTS)
    greedy = _ours(qwen, inputs, mask, qwen.stop_ids, caps)
    assert greedy == [f[:c] for f, c in zip(free, caps)]
    assert [len(g) for g in greedy] == caps  # the random LLM never ends on its own
    beam = _ours(qwen, inputs, mask, qwen.stop_ids, caps, num_beams=3)
    for i, cap in enumerate(caps):  # the hypothesis HF gives at max_new_tokens = the cap
        x, m = _alone(inputs, mask, i)
        assert [beam[i]] == _hf(qwen, x, m, qwen.stop_ids, cap, num_beams=3)


@contextlib.contextmanager
def decoder_rows(model):
    """Rows (sequences) the LLM's decoder is run on, one entry per call."""
    calls: list[int] = []

    def hook(module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        calls.append((x if x is not None else kwargs["input_ids"]).shape[0])

    base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    handle = base.get_decoder().register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def test_finished_rows_leave_the_batch(qwen, utts):
    inputs, mask = _prompts(qwen, utts)
    stops = _early_stops(qwen, inputs, mask)
    caps = [20, 20, 20, 20, 6, 20]
    with decoder_rows(qwen) as calls:
        out = _ours(qwen, inputs, mask, stops, caps)
    ended_by_stop = [len(o) < c for o, c in zip(out, caps)]
    assert any(ended_by_stop) and not all(ended_by_stop)
    # Each row is fed the tokens it emitted except the last, or all of them if a stop
    # token (not fed) ended it; nothing else.
    fed = [len(o) - (not s) for o, s in zip(out, ended_by_stop)]
    assert calls[:2] == [1, N_UTTS]  # the shared prompt start once, then each utterance's part
    assert sum(calls[2:]) == sum(fed)
    assert sum(calls[2:]) < N_UTTS * (len(calls) - 2)
    assert calls[2:] == sorted(calls[2:], reverse=True)


def test_beams_share_one_prefill_and_done_utterances_leave(qwen, utts):
    inputs, mask = _prompts(qwen, utts)
    caps = [16, 5, 16, 16, 16, 16]
    stops = sorted(set(qwen.stop_ids) | set(CROWD))
    with end_within(qwen, 0.15, stops), decoder_rows(qwen) as calls:
        out = _ours(qwen, inputs, mask, stops, caps, num_beams=5)
    # the shared prompt start once, then one prefill row per utterance, not one per beam
    assert calls[:2] == [1, N_UTTS]
    steps = calls[2:]
    assert steps[0] == N_UTTS * 5 and all(c % 5 == 0 for c in steps)
    assert steps == sorted(steps, reverse=True)
    # Utterances that were done stopped costing: the one capped at 5, and those whose best
    # open beam could no longer beat their finished ones (HF's rule) before their cap.
    assert sum(steps) < N_UTTS * 5 * len(steps) and steps[-1] < steps[0]
    assert sum(steps) < 5 * sum(c - 1 for c in caps)
    assert len(out[1]) <= 5


def test_generate_engines(qwen, utts):
    batch = _batch(qwen, utts, 4)
    for beams in (1, 3):
        west = qwen.generate(batch["mel"], batch["mel_lens"], num_beams=beams, max_new_tokens=10)
        if beams == 1:  # greedy rows are independent: HF's batch gives the same
            hf = qwen.generate(batch["mel"], batch["mel_lens"], max_new_tokens=10, engine="hf")
            assert west == hf
        assert len(west) == 4 and all(west)
    with pytest.raises(ValueError, match="unknown decoding engine"):
        qwen.generate(batch["mel"], batch["mel_lens"], engine="vllm")
    with pytest.raises(TypeError, match="use engine='hf'"):
        qwen.generate(batch["mel"], batch["mel_lens"], repetition_penalty=1.2)


@pytest.mark.parametrize("num_beams", [3, 5])
def test_beam_with_many_stop_ids_equals_hf(qwen, utts, num_beams):
    """Stop ids crowding the top candidates: HF keeps (1 + #stop ids) x beams of them, so
    that `num_beams` open beams remain even when most of the best continuations end."""
    inputs, mask = _prompts(qwen, utts)
    stops = sorted(set(qwen.stop_ids) | set(CROWD))
    lengths = []
    with end_within(qwen, 0.15, stops):
        for i in range(N_UTTS):
            x, m = _alone(inputs, mask, i)
            ours = _ours(qwen, x, m, stops, [12], num_beams)
            assert ours == _hf(qwen, x, m, stops, 12, num_beams), f"utterance {i}"
            lengths.append(len(ours[0]))
    assert max(lengths) > 1, lengths


def test_settings_only_hf_applies_are_named(qwen):
    config = qwen.llm.generation_config
    assert ignored_settings(qwen.llm) == []
    config.repetition_penalty = 1.3
    try:
        assert ignored_settings(qwen.llm) == ["repetition_penalty=1.3"]
    finally:
        config.repetition_penalty = 1.0


def test_bfloat16_greedy_equals_hf(model_args, tiny_llm, utts):
    """The dtype GPU users decode in: the shared prompt start, the KV cache and the masks
    follow the model's dtype, and the search still gives HF generate's tokens."""
    config = dataclasses.replace(model_args, llm_model_name_or_path=str(tiny_llm))
    torch.manual_seed(0)
    model = build_model(config, llm_dtype=torch.bfloat16).eval()
    model.projector.to(torch.bfloat16)
    model.encoder.to(torch.bfloat16)
    batch = _batch(model, utts, N_UTTS)
    mel = batch["mel"].to(torch.bfloat16)
    west = model.generate(mel, batch["mel_lens"], max_new_tokens=10)
    hf = model.generate(mel, batch["mel_lens"], max_new_tokens=10, engine="hf")
    assert len(west) == len(hf) == N_UTTS and all(west)
    # Token for token: each utterance alone through both searches. (Batched, the shared prompt
    # start changes the matmul shapes, and on CPUs with native bf16 (AVX512_BF16) the rounding
    # flips near-tied argmaxes of this random model.)
    with torch.inference_mode():
        speech, lens = model.speech_embeddings(mel, batch["mel_lens"])
        inputs, mask, _ = model._assemble(speech, lens, None, left_pad=True)
    assert inputs.dtype == torch.bfloat16
    stops = model.stop_ids
    for i in range(N_UTTS):
        x, m = _alone(inputs, mask, i)
        ours = _ours(model, x, m, stops, [10], shared=False)
        assert ours == _hf(model, x, m, stops, 10), f"utterance {i}"
    beam = model.generate(mel, batch["mel_lens"], num_beams=3, max_new_tokens=10)
    assert len(beam) == N_UTTS and all(beam)
