"""Hotwords (west.models.context): the bonus tree, the lists in the search and in the prompt.

Tiny random models on real espeak-ng speech and SmolLM2's real tokenizer: what a random
model writes is garbage, but a hotword bonus large enough must put the hotword in it, an
empty list must change nothing, and a list in the prompt must be read before the speech.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from west.config import ContextConf
from west.data.batching import collate
from west.data.dataset import SpeechDataset, read_data, validate
from west.models.build import build_model
from west.models.context import (
    ContextBias,
    ContextSampler,
    Writable,
    context_text,
    follows_words,
    hotword_tokens,
    read_hotwords,
    routes,
    segment,
    spellings,
)

pytestmark = pytest.mark.usefixtures("one_thread")
NO_GATE = -1e9  # every hotword match may start, whatever the CTC branch says

# ---- the bonus tree -------------------------------------------------------------------------


def total_bonus(bias: ContextBias, tokens: list[int]) -> float:
    """What a hypothesis writing `tokens` gains, step by step as the search adds it up."""
    states, total = bias.initial([0]), 0.0
    for tok in tokens:
        total += float(bias.deltas(states)[0, tok])
        states = bias.advance(states, [tok])
    return total


@pytest.fixture
def tree():
    # hotwords: "1 2" and its continuation "1 2 3", and "7"
    return ContextBias([both([[1, 2, 3], [1, 2], [7]])], vocab=10, bonus=2.0)


def both(seqs):
    """A list whose forms may all follow a word (hotword_tokens' two lists alike)."""
    return seqs, seqs


def test_only_complete_hotwords_keep_their_bonus(tree):
    assert total_bonus(tree, [1]) == 2.0  # a match under way holds its bonus...
    assert total_bonus(tree, [1, 5]) == 0.0  # ...and gives it back when it breaks
    assert total_bonus(tree, [1, 2, 5]) == 4.0  # "1 2" is complete: kept
    assert total_bonus(tree, [1, 2, 3, 5]) == 6.0  # the longer one too
    assert total_bonus(tree, [5, 7, 5, 7]) == 4.0  # each occurrence counts
    assert total_bonus(tree, [5, 4, 6]) == 0.0


def test_a_broken_match_may_start_another(tree):
    # "1" then "1": the first match breaks (-2), the second token starts a new one (+2)
    assert total_bonus(tree, [1, 1, 2]) == 4.0
    home = tree.home[tree.root[0]]
    assert tree.advance(tree.advance(tree.initial([0]), [1]), [7]) == [home]  # "7" complete


def test_deltas_at_the_root_and_within_a_match(tree):
    root = tree.initial([0])
    d = tree.deltas(root)[0]
    assert d[1] == 2.0 and d[7] == 2.0 and d[[0, 2, 3, 5]].abs().sum() == 0
    inside = tree.advance(root, [1])
    d = tree.deltas(inside)[0]
    assert d[2] == 2.0  # continues
    assert d[5] == -2.0  # breaks: the bonus given back
    assert d[7] == 0.0  # breaks, but starts "7"
    assert tree.continuations(inside) == [[2]] and tree.continuations(root) == [[]]


def test_each_utterance_has_its_own_list():
    bias = ContextBias([both([[1]]), both([]), both([[1]]), both([[4, 5]])], vocab=8, bonus=1.5)
    d = bias.deltas(bias.initial(range(4)))
    assert d[0, 1] == d[2, 1] == 1.5 and d[1].abs().sum() == 0 and d[3, 4] == 1.5
    assert bias.root[0] == bias.root[2]  # the same list: one tree


def test_tokens_beyond_the_output_layer_are_left_out():
    bias = ContextBias([both([[3, 12], [4]])], vocab=10, bonus=1.0)
    assert bias.deltas(bias.initial([0]))[0].nonzero().flatten().tolist() == [4]


def test_a_form_without_its_space_only_starts_a_transcript():
    # "1 2" is the form without a leading space, "9 2" the one with it
    bias = ContextBias([([[1, 2], [9, 2]], [[9, 2]])], vocab=10, bonus=1.0)
    assert total_bonus(bias, [1, 2]) == 2.0  # at the start
    assert total_bonus(bias, [5, 1, 2]) == 0.0  # not inside the text: it would split a word
    assert total_bonus(bias, [5, 9, 2]) == 2.0
    assert follows_words(" okafor") and not follows_words("okafor") and follows_words("北京")


# ---- lists from users ----------------------------------------------------------------------


def test_read_hotwords_from_a_file_a_string_or_a_list(tmp_path):
    f = tmp_path / "hotwords.txt"
    f.write_text("# names\nOkafor\n\n  New   York \nOkafor\n")
    assert read_hotwords(f) == read_hotwords(str(f)) == ["Okafor", "New York"]
    assert read_hotwords("Okafor, O'Brien,route 66") == ["Okafor", "O'Brien", "route 66"]
    assert read_hotwords(["北京", " "]) == ["北京"]
    assert read_hotwords(None) == [] and read_hotwords("") == []
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_hotwords(tmp_path / "missing.txt")


def test_spellings_cover_case_and_the_leading_space():
    assert spellings("okafor") == ["okafor", " okafor", "Okafor", " Okafor"]
    assert spellings("北京") == ["北京", " 北京"]


@pytest.mark.parametrize("word", ["O'Brien", "route 66", "北京", "Dvořák"])
def test_odd_words_tokenise_and_decode_back(tokenizer_dir, word):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    every, inner = hotword_tokens(tok, [word])
    assert {tok.decode(s) for s in every} == set(spellings(word))
    assert {tok.decode(s) for s in inner} == {f for f in spellings(word) if follows_words(f)}
    cache = {}
    assert hotword_tokens(tok, [word, "Okafor"], cache=cache) == hotword_tokens(
        tok, [word, "Okafor"]
    )
    assert set(cache) == {word, "Okafor"}
    assert hotword_tokens(tok, [word], cache=cache) == (every, inner)  # read from the cache


def test_routes():
    assert routes("auto", trained=False, bonus=2.0) == (False, True)
    assert routes("auto", trained=True, bonus=2.0) == (True, True)
    assert routes("auto", trained=True, bonus=0.0) == (True, False)
    assert routes("prompt", trained=False, bonus=2.0) == (True, False)
    with pytest.raises(ValueError, match="unknown context route"):
        routes("both ways", True, 1.0)


def test_training_lists():
    texts = ["the cat sat", "the dog ran", "the okafor spoke", "a zebra ran"]
    conf = ContextConf(prob=1.0, own_prob=1.0, max_distractors=2, num_common=3)
    sampler = ContextSampler(texts, conf)
    assert sampler.common == {"the", "ran", "a"}  # by count, then alphabetically
    rng = random.Random(0)
    for _ in range(20):
        words = sampler.sample("the okafor spoke", rng)
        assert {"okafor", "spoke"} <= set(words) and len(words) == len(set(words)) <= 4
        assert "the" not in words
    never = ContextSampler(texts, ContextConf(prob=0.0))
    assert never.sample("the okafor spoke", rng) == []
    assert context_text([], conf.template) == ""
    assert context_text(["a", "b"], "Hotwords: {words}.") == "Hotwords: a, b."


# ---- in the model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def utts(speech_dir):
    return validate(read_data(str(speech_dir / "data.jsonl")))[:4]


def _model(model_args, **changes):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(model_args, **changes)).eval()


@pytest.fixture(scope="module")
def plain(model_args):
    return _model(model_args)


@pytest.fixture(scope="module")
def with_ctc(model_args):
    return _model(model_args, ctc_conf={"weight": 1.0, "vocab": "full"})


@pytest.fixture(scope="module")
def ctc_train_vocab(model_args, utts):
    """A CTC branch over the tokens of these texts alone, as `ctc_conf.vocab: train` fits it."""
    model = _model(model_args, ctc_conf={"weight": 1.0, "vocab": "train"})
    model.ctc.fit_vocab(model.tokenizer, [u.txt for u in utts] + ["a lisbon view"])
    return model


def test_a_name_the_ctc_branch_never_learned_is_spelt_with_tokens_it_did(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    lis, bon = (tok(t, add_special_tokens=False).input_ids for t in (" Lis", "bon"))
    writable = Writable.of(tok, lis + bon)
    assert writable.texts == {" Lis": lis[0], "bon": bon[0]}
    seqs, _ = hotword_tokens(tok, ["Lisbon"], writable)
    assert [*lis, *bon] in seqs  # besides the tokenizer's own " Lisbon"
    assert tok(" Lisbon", add_special_tokens=False).input_ids in seqs
    assert segment(" Lisbon", {" L": 1, " Lis": 2, "is": 3, "bon": 4, "b": 5}, 4) == [2, 4]
    assert segment(" Lisbon", {" L": 1}, 2) is None


def test_joint_ctc_with_a_training_vocabulary_reaches_a_hotword(ctc_train_vocab, utts):
    batch = _batch(ctc_train_vocab, utts)
    texts = ctc_train_vocab.generate(
        batch["mel"],
        batch["mel_lens"],
        max_new_tokens=12,
        num_beams=3,
        ctc_weight=0.3,
        context=[["Lisbon"]] * len(utts),
        hotword_bonus=40.0,
        hotword_gate=NO_GATE,
    )
    assert all("lisbon" in t.lower() for t in texts), texts


def _batch(model, utts):
    return collate([SpeechDataset(utts, model.encoder.n_mels)[i] for i in range(len(utts))])


SEARCHES = {  # name: (model fixture, generate settings)
    "greedy": ("plain", {}),
    "beam": ("plain", {"num_beams": 3}),
    "joint_ctc": ("with_ctc", {"num_beams": 3, "ctc_weight": 0.3}),
}


@pytest.mark.parametrize("search", SEARCHES)
def test_empty_lists_decode_as_no_lists(request, utts, search):
    name, settings = SEARCHES[search]
    model = request.getfixturevalue(name)
    batch = _batch(model, utts)
    mel, lens = batch["mel"], batch["mel_lens"]
    none = model.generate(mel, lens, max_new_tokens=12, **settings)
    empty = model.generate(mel, lens, max_new_tokens=12, context=[[]] * len(utts), **settings)
    nones = model.generate(mel, lens, max_new_tokens=12, context=[None] * len(utts), **settings)
    assert empty == none == nones


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("word", ["Okafor", "O'Brien", "route 66", "北京"])
def test_a_large_bonus_writes_the_hotword(request, utts, search, word):
    name, settings = SEARCHES[search]
    model = request.getfixturevalue(name)
    batch = _batch(model, utts)
    mel, lens = batch["mel"], batch["mel_lens"]
    lists = [[word], [], [word], []]
    texts = model.generate(
        mel, lens, max_new_tokens=12, context=lists, hotword_bonus=40.0, hotword_gate=NO_GATE,
        **settings,
    )  # fmt: skip
    for text, words in zip(texts, lists):
        for w in words:
            assert w in text or w[0].swapcase() + w[1:] in text, (w, text)
    # The utterances without a list decode as without any.
    alone = model.generate(mel, lens, max_new_tokens=12, **settings)
    assert texts[1] == alone[1] and texts[3] == alone[3]


def test_the_gate_keeps_a_hotword_the_audio_does_not_support_out(with_ctc, utts):
    """A random CTC branch supports no token: with a gate of 0 (the first token must be the
    CTC prefix's own) no match starts, whatever the bonus; with none, the hotword wins."""
    batch = _batch(with_ctc, utts)
    mel, lens = batch["mel"], batch["mel_lens"]
    settings = dict(max_new_tokens=12, num_beams=3, ctc_weight=0.3, hotword_bonus=40.0)
    lists = [["Okafor"]] * len(utts)
    shut = with_ctc.generate(mel, lens, context=lists, hotword_gate=0.0, **settings)
    assert not any("okafor" in t.lower() for t in shut)
    open_ = with_ctc.generate(mel, lens, context=lists, hotword_gate=NO_GATE, **settings)
    assert all("okafor" in t.lower() for t in open_)


def test_the_floor_lifts_hotword_tokens_the_llm_finds_unlikely(with_ctc, utts):
    """With a floor of 0 a hotword token is as likely as any to the LLM: a bonus
    then writes it more often; with the floor far down the same bonus less."""
    batch = _batch(with_ctc, utts)
    mel, lens = batch["mel"], batch["mel_lens"]
    settings = dict(max_new_tokens=12, num_beams=3, ctc_weight=0.3, hotword_gate=NO_GATE)
    lists = [["Okafor"]] * len(utts)
    low = with_ctc.generate(
        mel, lens, context=lists, hotword_bonus=3.0, hotword_floor=-1e9, **settings
    )
    high = with_ctc.generate(
        mel, lens, context=lists, hotword_bonus=3.0, hotword_floor=0.0, **settings
    )
    count = lambda texts: sum("okafor" in t.lower() for t in texts)  # noqa: E731
    assert count(high) > count(low)


def test_a_small_bonus_changes_little(plain, utts):
    batch = _batch(plain, utts)
    mel, lens = batch["mel"], batch["mel_lens"]
    base = plain.generate(mel, lens, max_new_tokens=12, num_beams=3)
    tiny = plain.generate(
        mel, lens, max_new_tokens=12, num_beams=3, context=[["Okafor"]] * 4, hotword_bonus=1e-4
    )
    assert tiny == base


def test_hf_engine_takes_no_hotwords_in_the_search(plain, utts):
    batch = _batch(plain, utts[:1])
    with pytest.raises(ValueError, match="engine 'west'"):
        plain.generate(batch["mel"], batch["mel_lens"], engine="hf", context=[["Okafor"]])


def test_list_count_must_match_the_batch(plain, utts):
    batch = _batch(plain, utts[:2])
    with pytest.raises(ValueError, match="1 hotword lists for 2 utterances"):
        plain.generate(batch["mel"], batch["mel_lens"], context=[["Okafor"]])


@pytest.fixture(scope="module")
def prompted(model_args):
    return _model(model_args, context_conf={"prob": 0.5, "max_tokens": 40})


def test_the_prompt_reads_the_list_before_the_speech(prompted, utts):
    batch = _batch(prompted, utts[:2])
    speech, lens = prompted.speech_embeddings(batch["mel"], batch["mel_lens"])
    ids = prompted.context_ids(["Okafor", "Lisbon"])
    assert prompted.tokenizer.decode(ids) == "Hotwords: Okafor, Lisbon.\n"
    inputs, mask, _ = prompted._assemble(speech, lens, None, True, context_ids=[ids, []])
    plain_inputs, plain_mask, _ = prompted._assemble(speech, lens, None, True)
    # Row 0 is longer by the list, which sits right after the prompt's start.
    assert mask[0].sum() - plain_mask[0].sum() == len(ids)
    n0 = int(mask[0].sum())
    start = inputs.shape[1] - n0 + len(prompted.prefix_ids)
    expected = prompted.embed_tokens(torch.tensor(ids))
    assert torch.equal(inputs[0, start : start + len(ids)], expected)
    assert torch.equal(
        inputs[1, -int(mask[1].sum()) :], plain_inputs[1, -int(plain_mask[1].sum()) :]
    )


def test_prompt_route_batch_equals_alone(prompted, utts):
    batch = _batch(prompted, utts[:3])
    lists = [["Okafor"], [], ["Lisbon", "Granada"]]
    together = prompted.generate(batch["mel"], batch["mel_lens"], max_new_tokens=10, context=lists)
    for i in range(3):
        one = _batch(prompted, utts[i : i + 1])
        alone = prompted.generate(
            one["mel"], one["mel_lens"], max_new_tokens=10, context=[lists[i]]
        )
        assert alone == [together[i]]


def test_a_list_too_long_for_the_prompt_names_the_limit(prompted, utts):
    batch = _batch(prompted, utts[:1])
    words = [f"name{i}" for i in range(30)]
    with pytest.raises(ValueError, match="more than the 40 the model takes"):
        prompted.generate(batch["mel"], batch["mel_lens"], context=[words])
    # The search alone takes it.
    prompted.generate(
        batch["mel"], batch["mel_lens"], max_new_tokens=4, context=[words], context_route="search"
    )


def test_training_reads_lists_in_the_prompt(prompted, utts):
    texts = [u.txt for u in utts]
    sampler = ContextSampler(texts, ContextConf(prob=1.0, own_prob=1.0, num_common=2))
    data = SpeechDataset(utts, prompted.encoder.n_mels, prompted.tokenizer, context=sampler)
    items = [data[i] for i in range(len(utts))]
    assert all(it["context_ids"] for it in items)
    batch = collate(items)
    prompted.train()
    out = prompted(**batch)
    prompted.eval()
    assert torch.isfinite(out["loss"])
    # Each time an utterance is read, a fresh list.
    lists = {tuple(data[0]["context_ids"]) for _ in range(8)}
    assert len(lists) > 1


def test_a_transcriber_checks_a_list_before_decoding(prompted):
    from west.transcriber import Transcriber

    transcriber = Transcriber(prompted, hotwords=["Okafor"])
    transcriber.check_hotwords(["Lisbon"])
    with pytest.raises(ValueError, match="more than the 40 the model takes"):
        transcriber.check_hotwords([f"name{i}" for i in range(30)])
    Transcriber(prompted, context_route="search").check_hotwords([f"n{i}" for i in range(30)])
    with pytest.raises(ValueError, match="unknown context route"):
        Transcriber(prompted, context_route="prompts")
