"""Repetition loops: the detector on token lists, and every engine and beam on a model made to
loop, decoding long real speech (espeak-ng sentences joined into two windows)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from conftest import SENTENCES, synthesize
from safetensors.torch import save_file

from west.data.audio import load_audio
from west.models.build import build_model
from west.models.repetition import cut_loop, loop_start
from west.transcriber import Transcriber

pytestmark = pytest.mark.usefixtures("one_thread")

# The loop the model is made to write: one sentence of single-token words, over and over.
LOOP_WORDS = [" but", " as", " the", " writer", " should", " by", " time"]


def test_loop_start_finds_a_sentence_written_three_times():
    sentence = [5, 6, 7, 8, 9]
    assert loop_start(sentence * 2) is None  # twice may be speech
    assert loop_start(sentence * 3) == 5  # cut there: one copy kept
    assert loop_start([1, 2] + sentence * 3) == 7


def test_loop_start_keeps_a_word_said_a_few_times():
    assert loop_start([1, 2, 2]) is None  # "very very"
    assert loop_start([1, 3, 3, 3]) is None  # "no no no"
    assert loop_start([1] + [3] * 5) is None
    assert loop_start([1] + [3] * 6) == 2  # "dear dear dear dear dear dear"


def test_cut_loop_cuts_a_loop_in_the_middle_and_what_follows():
    # A loop cut short by the token cap ends in part of a copy: all of it goes.
    tokens = [1, 2] + [5, 6, 7] * 4 + [5, 6]
    assert cut_loop(tokens) == ([1, 2, 5, 6, 7], True)
    assert cut_loop([1, 2, 3, 1, 2, 3]) == ([1, 2, 3, 1, 2, 3], False)
    assert cut_loop([]) == ([], False)


def repeated_phrase(text: str) -> str | None:
    """A phrase of one or more words written three or more times in a row, else None (an
    independent check: words, not tokens)."""
    m = re.search(r"\b(\w+(?: \w+)*?)(?: \1\b){2,}", text)
    return m[0] if m else None


def write_looping_llm(tiny_llm, out, last_prompt_token: int):
    """The tiny LLM changed to write LOOP_WORDS over and over whatever it reads: its layers add
    nothing (each position's hidden state is its own token's embedding), and an untied output
    layer maps each loop word to the next and the prompt's last token to the first."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm)
    llm = AutoModelForCausalLM.from_pretrained(tiny_llm)
    ids = [tok(w, add_special_tokens=False).input_ids for w in LOOP_WORDS]
    assert all(len(i) == 1 for i in ids), ids
    cycle = [i[0] for i in ids]
    with torch.no_grad():
        for layer in llm.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = llm.get_input_embeddings().weight
        hidden = llm.model.norm(emb)  # the final hidden state after reading each token
        direction = hidden / hidden.norm(dim=-1, keepdim=True)
        head = torch.zeros_like(emb)
        for prev, nxt in zip([last_prompt_token, *cycle], [*cycle, cycle[0]]):
            head[nxt] += 20 * direction[prev]
    llm.config.tie_word_embeddings = False
    llm.lm_head = torch.nn.Linear(emb.shape[1], emb.shape[0], bias=False)
    llm.lm_head.weight = torch.nn.Parameter(head)
    llm.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def looping_models(model_args, tiny_llm, tmp_path_factory):
    """{name: SpeechLLM} made to loop, without and with a CTC branch (random)."""
    probe = build_model(model_args)
    llm_dir = write_looping_llm(
        tiny_llm, tmp_path_factory.mktemp("looping_llm"), int(probe.suffix_ids[-1])
    )
    models = {}
    for name, ctc in (("plain", {}), ("ctc", {"weight": 1.0, "vocab": "full"})):
        args = dataclasses.replace(model_args, llm_model_name_or_path=str(llm_dir), ctc_conf=ctc)
        torch.manual_seed(0)
        models[name] = build_model(args).eval()
    return models


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory) -> np.ndarray:
    """About 40 s of real (espeak-ng) speech: sentences with short pauses, cut into two windows."""
    out = tmp_path_factory.mktemp("long")
    pause = np.zeros(8000, dtype=np.float32)
    pieces = []
    while sum(len(p) for p in pieces) < 40 * 16000:
        for i, s in enumerate(SENTENCES):
            pieces += [load_audio(synthesize(s, out / f"s{i}.wav")), pause]
    return np.concatenate(pieces)[: 40 * 16000]


def test_the_model_really_loops_without_the_guard(looping_models):
    """transformers' own generate, which has no guard, writes the loop over and over."""
    model = looping_models["plain"]
    prompt = torch.cat([model.prefix_ids, model.suffix_ids])[None]
    out = model.llm.generate(input_ids=prompt, max_new_tokens=30, do_sample=False)
    text = model.tokenizer.decode(out[0, prompt.shape[1] :])
    assert repeated_phrase(text), text


@pytest.mark.parametrize(
    "name, engine, beams, ctc_weight",
    [
        ("plain", "west", 1, 0.0),
        ("plain", "west", 3, 0.0),
        ("plain", "hf", 1, 0.0),
        ("plain", "hf", 3, 0.0),
        ("ctc", "west", 1, 0.0),
        ("ctc", "west", 1, 0.5),
        ("ctc", "west", 3, 0.5),
    ],
)
def test_no_engine_or_beam_writes_a_loop(
    looping_models, long_speech, name, engine, beams, ctc_weight
):
    transcriber = Transcriber(
        looping_models[name], num_beams=beams, engine=engine, ctc_weight=ctc_weight
    )
    segments = transcriber.transcribe(long_speech, 16000, return_segments=True)
    assert len(segments) == 2  # two windows of long real speech
    for s in segments:
        assert repeated_phrase(s.text) is None, s.text
    if ctc_weight == 0:  # the LLM alone: it writes the loop's words once
        assert segments[0].text == "".join(LOOP_WORDS).strip()


@pytest.mark.parametrize("beams", [1, 3])
def test_without_the_guard_wests_search_writes_the_loop(looping_models, long_speech, beams):
    """The guard is what stops it: turned off, WeST's own search writes the loop too."""
    model = looping_models["plain"]
    mel, lens = Transcriber(model).features([long_speech[: 10 * 16000]])
    text = model.generate(mel=mel, mel_lens=lens, num_beams=beams, loop_guard=False)[0]
    assert repeated_phrase(text), text


def test_the_cap_from_the_audio_bounds_a_window(looping_models, long_speech):
    """max_tokens_per_second: a 3 s window at 1 token a second gets 3 + 10 = 13 tokens, less
    than the loop needs to show (3 copies of 7), so the cap is what ends it."""
    model = looping_models["plain"]
    t = Transcriber(model)
    mel, lens = t.features([long_speech[: 3 * 16000]])
    capped = model.generate(
        mel=mel, mel_lens=lens, max_tokens_per_second=1.0, return_hypotheses=True
    )
    assert len(capped[0].tokens) == 13
    loose = model.generate(
        mel=mel, mel_lens=lens, max_tokens_per_second=12.0, return_hypotheses=True
    )
    assert len(loose[0].tokens) == len(LOOP_WORDS)  # the guard ended it: one copy kept


def test_saved_decoding_settings_are_the_defaults(model_args, tmp_path):
    """A checkpoint's decode_conf is how west.load decodes it; arguments still win."""
    import west

    args = dataclasses.replace(
        model_args,
        ctc_conf={"weight": 1.0, "vocab": "full"},
        decode_conf={"num_beams": 4, "max_new_tokens": 33},
    )
    torch.manual_seed(0)
    save_file(build_model(args).trainable_state_dict(), str(tmp_path / "model.safetensors"))
    args.save(tmp_path)
    t = west.load(tmp_path)
    assert (t.num_beams, t.max_new_tokens, t.ctc_weight) == (4, 33, 0.5)  # CTC: joint by default
    t = west.load(tmp_path, num_beams=1, ctc_weight=0.0)
    assert (t.num_beams, t.max_new_tokens, t.ctc_weight) == (1, 33, 0.0)
