"""The CTC branch (west.models.ctc): compression (blank frames dropped, runs of one label
averaged, per utterance), prefix scores for joint CTC / LLM decoding (against torch's CTC loss,
and in `generate`), and the training-transcript vocabulary."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F

from west.data.batching import collate
from west.data.dataset import SpeechDataset, read_data, validate
from west.models.build import build_model
from west.models.ctc import CTCHead, CTCPrefixScorer, compress


def _logits(labels: list[int], vocab: int = 5) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), vocab).float() * 10


def test_drops_blanks_and_averages_runs():
    blank = 4
    labels = [4, 1, 1, 4, 4, 2, 1, 1, 1, 4]
    frames = torch.arange(10, dtype=torch.float)[:, None].repeat(1, 3)
    out, lens = compress(frames[None], torch.tensor([10]), _logits(labels)[None], blank)
    # runs of non-blank labels: frames [1, 2] -> 1.5, [5] -> 5, [6, 7, 8] -> 7
    assert lens.tolist() == [3]
    assert out[0, :, 0].tolist() == [1.5, 5.0, 7.0]


def test_repeated_label_split_by_blank_stays_two_tokens():
    blank = 4
    labels = [1, 4, 1, 2]
    frames = torch.tensor([[1.0], [9.0], [3.0], [5.0]])
    out, lens = compress(frames[None], torch.tensor([4]), _logits(labels)[None], blank)
    assert lens.tolist() == [3]
    assert out[0, :, 0].tolist() == [1.0, 3.0, 5.0]


def test_batch_respects_lengths_and_all_blank_keeps_one_frame():
    blank = 4
    logits = torch.stack([_logits([1, 2, 4, 4]), _logits([4, 4, 4, 3])])
    logits[1, 3] = _logits([4])[0]  # second utterance is all blank within its length
    logits[1, 1, 2] = 5.0  # its most token-like frame is 1
    frames = torch.randn(2, 4, 6)
    out, lens = compress(frames, torch.tensor([4, 3]), logits, blank)
    assert lens.tolist() == [2, 1]
    torch.testing.assert_close(out[1, 0], frames[1, 1])
    assert out.shape == (2, 2, 6) and out[1, 1].abs().sum() == 0


def test_soft_table_gives_token_embeddings():
    blank = 4
    table = torch.randn(5, 8)
    out, lens = compress(
        torch.zeros(1, 3, 8), torch.tensor([3]), _logits([2, 4, 3])[None] * 10, blank, table
    )
    assert lens.tolist() == [2]
    torch.testing.assert_close(out[0], table[[2, 3]], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["ctc", "ctc_soft"])
def test_compressed_model_trains_and_decodes_batch_equal_single(model_args, speech_dir, mode):
    torch.manual_seed(0)
    model = build_model(
        dataclasses.replace(model_args, ctc_conf={"weight": 1.0, "compression": mode})
    )
    utts = validate(read_data(str(speech_dir / "data.jsonl")))
    ds = SpeechDataset(utts, 80, model.tokenizer)
    batch = collate([ds[i] for i in range(3)])
    out = model(**batch)
    out["loss"].backward()
    assert model.projector.linear2.weight.grad is not None
    model.eval()
    texts = model.generate(batch["mel"], batch["mel_lens"], max_new_tokens=5)
    for i in range(3):
        n = int(batch["mel_lens"][i])
        assert model.generate(
            batch["mel"][i : i + 1, :, :n], batch["mel_lens"][i : i + 1], max_new_tokens=5
        ) == [texts[i]]


def test_compression_needs_ctc(model_args):
    with pytest.raises(ValueError, match="ctc_conf: compression 'ctc' needs the CTC branch"):
        dataclasses.replace(model_args, ctc_conf={"compression": "ctc"})


STOP = 7  # an LLM id outside the CTC vocabulary, ending the transcript
INDEX = torch.tensor([0, 1, 2, 3, 4, -1, -1, -1])  # LLM ids 0-4 are CTC labels 0-4, blank 5
LABELS = INDEX[:, None]  # one label per token


def _scorer(seed=0):
    torch.manual_seed(seed)
    log_probs = torch.randn(2, 12, 6).mul(2).log_softmax(-1)
    lens = torch.tensor([12, 8])
    return log_probs, lens, CTCPrefixScorer(log_probs, lens, LABELS, [STOP])


def _ctc_log_likelihood(log_probs: torch.Tensor, labels: list[int]) -> float:
    """log P_ctc(labels | (T, C + 1) log posteriors, blank 5), by torch's CTC loss."""
    loss = F.ctc_loss(
        log_probs[:, None],
        torch.tensor([labels]),
        torch.tensor([len(log_probs)]),
        torch.tensor([len(labels)]),
        blank=5,
        reduction="sum",
    )
    return -float(loss)


def _walk(scorer, utt, tokens) -> float:
    """Sum of the increments along `tokens` (then the stop token), one hypothesis at a time."""
    state, total = scorer.initial(torch.tensor([utt])), 0.0
    for tok in [*tokens, STOP]:
        delta, r = scorer.score(torch.tensor([utt]), state, torch.tensor([[6, tok]]))
        total += float(delta[0, 1])
        state = scorer.advance(
            state, torch.tensor([0]), torch.tensor([1]), r, delta, torch.tensor([tok])
        )
    return total


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("utt", [0, 1])
@pytest.mark.parametrize("tokens", [[1], [1, 1], [2, 0, 2], [3, 3, 4], [4, 2, 1, 0]])
def test_full_hypothesis_scores_its_ctc_likelihood(seed, utt, tokens):
    """Summed increments up to the stop token = log P_ctc(tokens | audio) (repeats included)."""
    log_probs, lens, scorer = _scorer(seed)
    expected = _ctc_log_likelihood(log_probs[utt, : int(lens[utt])], tokens)
    assert _walk(scorer, utt, tokens) == pytest.approx(expected, abs=1e-4)


def test_prefix_scores_are_the_sum_over_their_continuations():
    """psi(prefix) = P(the transcript is exactly it) + sum over next tokens of psi(prefix + c)."""
    _, _, scorer = _scorer(2)
    utts = torch.tensor([0])
    for prefix in ([], [2], [2, 2], [1, 3]):
        state = scorer.initial(utts)
        for tok in prefix:
            d, r = scorer.score(utts, state, torch.tensor([[tok]]))
            state = scorer.advance(
                state, torch.tensor([0]), torch.tensor([0]), r, d, torch.tensor([tok])
            )
        d, _ = scorer.score(utts, state, torch.tensor([[0, 1, 2, 3, 4, STOP]]))
        assert float(torch.logsumexp(d[0], 0)) == pytest.approx(0.0, abs=1e-4)


def test_tokens_outside_the_vocabulary_are_ruled_out():
    _, _, scorer = _scorer()
    d, _ = scorer.score(
        torch.tensor([0]), scorer.initial(torch.tensor([0])), torch.tensor([[5, 6, 1]])
    )
    assert d[0, 0] < -1e9 and d[0, 1] < -1e9 and d[0, 2] > -1e3


def test_padding_frames_change_nothing():
    log_probs, lens, scorer = _scorer(3)
    alone = CTCPrefixScorer(log_probs[1:, : int(lens[1])], lens[1:], LABELS, [STOP])
    for tokens in itertools.product([0, 3], repeat=2):
        assert _walk(scorer, 1, list(tokens)) == pytest.approx(
            _walk(alone, 0, list(tokens)), abs=1e-4
        )


@pytest.fixture(scope="module")
def ctc_model(model_args):
    torch.manual_seed(0)
    config = dataclasses.replace(model_args, ctc_conf={"weight": 1.0, "compression": "ctc_soft"})
    return build_model(config).eval()


@pytest.fixture(scope="module")
def batch(ctc_model, speech_dir):
    utts = validate(read_data(str(speech_dir / "data.jsonl")))
    ds = SpeechDataset(utts, ctc_model.encoder.n_mels, ctc_model.tokenizer)
    return collate([ds[i] for i in range(4)])


def test_joint_decoding_batched_equals_single_and_changes_the_output(ctc_model, batch):
    m = ctc_model
    joint = m.generate(
        batch["mel"], batch["mel_lens"], num_beams=3, max_new_tokens=6, ctc_weight=0.5
    )
    for i in range(4):
        n = int(batch["mel_lens"][i])
        alone = m.generate(
            batch["mel"][i : i + 1, :, :n],
            batch["mel_lens"][i : i + 1],
            num_beams=3,
            max_new_tokens=6,
            ctc_weight=0.5,
        )
        assert alone == [joint[i]]
    plain = m.generate(batch["mel"], batch["mel_lens"], num_beams=3, max_new_tokens=6)
    assert joint != plain  # the random CTC branch has its say


def test_ctc_weight_one_keeps_to_the_ctc_vocabulary(ctc_model, batch):
    """With weight 1 the LLM only proposes candidates (with the CTC best path's tokens); the
    CTC branch decides, so every token kept is one it can emit."""
    from west.models.search import search

    m = ctc_model
    m.ctc.set_tokens(range(0, 2000))  # a vocabulary the random LLM rarely proposes from alone
    try:
        with torch.inference_mode():
            speech, lens = m.speech_embeddings(batch["mel"], batch["mel_lens"])
            llm_speech, llm_lens = m.llm_speech(speech, lens)
            inputs, mask, _ = m._assemble(llm_speech, llm_lens, None, left_pad=True)
            scorer = m.ctc_prefix_scorer(speech, lens)
            ids = search(m.llm, inputs, mask, [5] * 4, m.stop_ids, 2, scorer, 1.0)
        assert any(ids) and all(i < 2000 for row in ids for i in row)
    finally:
        m.ctc.tokens, m.ctc.index = None, None


def test_joint_decoding_needs_a_ctc_branch(model_args, batch):
    torch.manual_seed(0)
    plain = build_model(model_args).eval()
    with pytest.raises(ValueError, match="needs engine 'west' and a model trained with a CTC"):
        plain.generate(batch["mel"], batch["mel_lens"], ctc_weight=0.5)


def test_fit_vocab_keeps_the_training_tokens_only_when_asked(tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = ["the quick brown fox", "a stitch in time"]
    ids = sorted({i for t in texts for i in tokenizer(t, add_special_tokens=False).input_ids})
    head = CTCHead(8, len(tokenizer), vocab="train")
    head.fit_vocab(tokenizer, texts)
    assert head.tokens.tolist() == ids
    assert head.token_ids(torch.tensor([0, len(ids) - 1])).tolist() == [ids[0], ids[-1]]
    assert head.index[ids].tolist() == list(range(len(ids)))
    full = CTCHead(8, len(tokenizer), vocab="full")
    full.fit_vocab(tokenizer, texts)
    assert full.tokens is None


# vocab chars: a token is the sequence of its characters' labels
SPELT = torch.tensor([[0, -1, -1], [1, -1, -1], [2, -1, -1], [3, -1, -1], [4, -1, -1],
                      [1, 2, -1], [2, 2, -1], [-1, -1, -1], [3, 0, 4]])  # fmt: skip


@pytest.mark.parametrize("utt", [0, 1])
@pytest.mark.parametrize("tokens", [[5], [6], [8, 8], [5, 6, 1], [2, 6], [4, 8, 3]])
def test_tokens_of_several_labels_score_their_spelling(utt, tokens):
    """A multi-label token is its labels one after the other: the summed increments of a
    hypothesis are the CTC log-likelihood of its spelling (repeats across tokens included)."""
    log_probs = torch.randn(2, 14, 6, generator=torch.Generator().manual_seed(4))
    log_probs = log_probs.mul(2).log_softmax(-1)
    lens = torch.tensor([14, 11])
    scorer = CTCPrefixScorer(log_probs, lens, SPELT, [STOP])
    labels = [int(x) for t in tokens for x in SPELT[t] if x >= 0]
    expected = _ctc_log_likelihood(log_probs[utt, : int(lens[utt])], labels)
    assert _walk(scorer, utt, tokens) == pytest.approx(expected, abs=1e-4)


def test_char_vocab_spells_text_and_tokens(tokenizer_dir):
    from transformers import AutoTokenizer

    from west.models.ctc import OUTSIDE

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    head = CTCHead(8, len(tokenizer), vocab="chars")
    head.fit_vocab(tokenizer, ["the quick brown fox", "a stitch in time"])
    chars = sorted(set("the quick brown fox a stitch in time"))
    assert sorted(head.spelling.chars) == chars  # label order: token id order
    assert sorted(head.tokens.tolist()) == sorted(
        tokenizer(c, add_special_tokens=False).input_ids[0] for c in chars
    )
    ids = torch.tensor(tokenizer("the brown time", add_special_tokens=False).input_ids)
    assert len(ids) < len("the brown time")  # several characters per LLM token
    assert head.spelling.text(head.spelling.spell(ids)) == "the brown time"
    # a character never in training is left out of the target, and rules its tokens out
    zen = head.spelling.spell(torch.tensor(tokenizer("zen", add_special_tokens=False).input_ids))
    assert zen.tolist()[0] == OUTSIDE and (zen[1:] >= 0).all()
    table = head.spelling.table(len(tokenizer))
    word = tokenizer(" brown", add_special_tokens=False).input_ids
    assert len(word) == 1 and head.spelling.text(table[word[0]][table[word[0]] >= 0]) == " brown"
    assert (table[tokenizer(" zen", add_special_tokens=False).input_ids[0]] == -1).all()
    assert (table[tokenizer.convert_tokens_to_ids("<|im_end|>")] == -1).all()


def test_char_ctc_model_trains_decodes_jointly_and_reloads(model_args, speech_dir, tmp_path):
    """vocab chars end to end: the CTC loss over characters, the LLM reading one vector per
    character run, joint decoding (batched = one at a time), and the reloaded model (its
    character table saved, its spelling rebuilt from the tokenizer) decoding the same."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    conf = {"weight": 1.0, "vocab": "chars", "compression": "ctc_soft"}
    # 25 frames a second: room for the characters
    config = dataclasses.replace(model_args, ctc_conf=conf, encoder_projector_ds_rate=2)
    model = build_model(config)
    utts = validate(read_data(str(speech_dir / "data.jsonl")))
    model.ctc.fit_vocab(model.tokenizer, [u.txt for u in utts])
    assert len(model.ctc.tokens) == len({c for u in utts for c in u.txt})
    ds = SpeechDataset(utts, 80, model.tokenizer)
    batch = collate([ds[i] for i in range(3)])
    out = model(**batch)
    out["loss"].backward()
    assert out["ctc_loss"] > 0 and model.ctc.blank.grad is not None
    model.eval()
    kw = {"num_beams": 2, "max_new_tokens": 5, "ctc_weight": 0.5}
    texts = model.generate(batch["mel"], batch["mel_lens"], **kw)
    for i in range(3):
        n = int(batch["mel_lens"][i])
        mel, lens = batch["mel"][i : i + 1, :, :n], batch["mel_lens"][i : i + 1]
        assert model.generate(mel, lens, **kw) == [texts[i]]
    save_file(model.trainable_state_dict(), str(tmp_path / "model.safetensors"))
    loaded = build_model(dataclasses.replace(config, projector_model_path=str(tmp_path))).eval()
    assert loaded.ctc.spelling.chars == model.ctc.spelling.chars
    assert loaded.generate(batch["mel"], batch["mel_lens"], **kw) == texts
