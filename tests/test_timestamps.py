"""Word timestamps (west.timestamps): SmolLM2's real tokenizer, CTC label tables built by the
real CTC branch (full, `train` and `chars` vocabularies), hand-made posteriors whose words'
times are known; then a tiny random model with a CTC branch through west.Transcriber."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import west
from west.models.ctc import CTCHead
from west.timestamps import (
    Word,
    join_words,
    speech_runs,
    split_words,
    token_spans,
    word_timestamps,
)

P = 0.9  # posterior of the label each hand-made frame holds

# Tiny matrices: on a shared 2-core machine, threads only wait for each other.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def _head(tok, vocab: str = "full", token_ids=None, texts=None) -> CTCHead:
    head = CTCHead(8, len(tok), vocab=vocab)
    if vocab == "train":
        head.set_tokens(token_ids)
    elif vocab == "chars":
        head.fit_vocab(tok, texts)
    return head


def _posteriors(frames: int, width: int, runs: list[tuple[int, int, int]]) -> torch.Tensor:
    """(frames, width) log posteriors, blank last: P on `label` over frames a..b of each
    (label, a, b), P on blank elsewhere, the rest spread evenly."""
    x = torch.full((frames, width), (1 - P) / (width - 1))
    x[:, -1] = P
    for label, a, b in runs:
        x[a : b + 1, -1] = (1 - P) / (width - 1)
        x[a : b + 1, label] = P
    return x.log()


def _times(words: list[Word]) -> list[tuple[str, float, float]]:
    return [(w.word, round(w.start, 6), round(w.end, 6)) for w in words]


SENTENCE = "Don't stop at 1,234 now."
# Its tokens: Don 't ␣stop ␣at ␣ 1 , 2 3 4 ␣now . -> the frames each is said on.
FRAMES = [(2, 3), (4, 4), (7, 9), (11, 11), (12, 12), (13, 13), (14, 14), (15, 15), (16, 16),
          (17, 17), (20, 22), (23, 23)]  # fmt: skip


def test_words_split_at_spaces_cjk_characters_and_keep_punctuation():
    cases = {
        SENTENCE: ["Don't", "stop", "at", "1,234", "now."],
        "你好，世界。我用Python写": ["你", "好，", "世", "界。", "我", "用", "Python", "写"],
        "他说：“你好！”然后": ["他", "说：", "“你", "好！”", "然", "后"],
        "word(s) (aside) -- x": ["word(s)", "(aside)", "--", "x"],
        "안녕하세요 세계": ["안녕하세요", "세계"],  # Hangul is written with spaces
    }
    for text, words in cases.items():
        got = [text[a:b] for a, b in split_words(text)]
        assert got == words
        assert join_words(got) == text


def test_token_spans_give_byte_pieces_to_the_character_they_complete(tok):
    text = "你好 😀"
    ids = tok(text, add_special_tokens=False).input_ids
    decoded, spans = token_spans(tok, ids)
    assert decoded == text and len(ids) > 3  # byte pieces: more tokens than characters
    assert spans[0][:2] == (0, 0) and spans[0][2]  # half of 你
    assert "".join(decoded[a:b] for a, b, _ in spans) == text
    assert [b for _, b, _ in spans] == sorted(b for _, b, _ in spans)


def test_train_vocabulary_apostrophes_digits_and_frames(tok):
    ids = tok(SENTENCE, add_special_tokens=False).input_ids
    assert len(ids) == len(FRAMES)
    head = _head(tok, "train", ids)
    table = head.token_labels(len(tok))
    labels = table[ids, 0]
    x = _posteriors(
        26, len(head.tokens) + 1, [(int(lab), a, b) for lab, (a, b) in zip(labels, FRAMES)]
    )
    words = word_timestamps(tok, ids, x, table, 0.1, offset=10.0)
    assert _times(words) == [
        ("Don't", 10.2, 10.5),
        ("stop", 10.7, 11.0),
        ("at", 11.1, 11.2),
        ("1,234", 11.3, 11.8),  # the lone space token's frame (12) is no word's
        ("now.", 12.0, 12.4),
    ]
    assert " ".join(w.word for w in words) == SENTENCE
    assert all(w.confidence == pytest.approx(P) for w in words)
    # The window ends at 11.5 s: nothing passes it.
    clipped = word_timestamps(tok, ids, x, table, 0.1, offset=10.0, end=11.5)
    assert all(w.end <= 11.5 for w in clipped) and clipped[3].start == pytest.approx(11.3)
    assert clipped[4].start == clipped[4].end == 11.5


def test_tokens_outside_the_table_take_no_frames(tok):
    ids = tok(SENTENCE, add_special_tokens=False).input_ids
    pieces = tok.convert_ids_to_tokens(ids)
    outside = {"'t", ".", "Ġstop"}  # a word part, a punctuation mark, a whole word
    kept = [i for i, p in zip(ids, pieces) if p not in outside]
    stranger = tok(" banana", add_special_tokens=False).input_ids[0]  # heard, never written
    head = _head(tok, "train", [*kept, stranger])
    table = head.token_labels(len(tok))
    runs = [
        (int(table[i, 0]), a, b) for i, p, (a, b) in zip(ids, pieces, FRAMES) if p not in outside
    ]
    runs.append((int(table[stranger, 0]), 7, 9))  # where " stop" was said
    x = _posteriors(26, len(head.tokens) + 1, runs)
    words = word_timestamps(tok, ids, x, table, 0.1)
    assert _times(words) == [
        ("Don't", 0.2, 0.4),  # from "Don" alone
        ("stop", 0.7, 1.0),  # no label: between its neighbours, where speech was heard
        ("at", 1.1, 1.2),
        ("1,234", 1.3, 1.8),
        ("now.", 2.0, 2.3),  # from " now" alone
    ]
    assert words[1].confidence == 0.0 and words[0].confidence == pytest.approx(P)
    # Nothing heard in the gap: the word takes all of it.
    quiet = _posteriors(26, len(head.tokens) + 1, runs[:-1])
    assert _times(word_timestamps(tok, ids, quiet, table, 0.1))[1] == ("stop", 0.4, 1.1)


def test_a_word_of_several_tokens_spans_them_all(tok):
    text = "so unbelievable"
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) == 3  # so, ␣unbelie, vable
    head = _head(tok)  # the full vocabulary: label = token id
    table = head.token_labels(len(tok))
    x = _posteriors(12, len(tok) + 1, [(ids[0], 1, 1), (ids[1], 3, 5), (ids[2], 6, 8)])
    assert _times(word_timestamps(tok, ids, x, table, 0.1)) == [
        ("so", 0.1, 0.2),
        ("unbelievable", 0.3, 0.9),
    ]


def test_chinese_characters_from_byte_pieces(tok):
    text = "你好，世界。"
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) == 11  # 你 好 世 界 are 2-3 byte pieces each; ， and 。 one token each
    head = _head(tok)
    table = head.token_labels(len(tok))
    frames = [1, 2, 5, 6, 7, 10, 11, 13, 14, 15, 16]  # one frame per token
    x = _posteriors(20, len(tok) + 1, [(i, f, f) for i, f in zip(ids, frames)])
    words = word_timestamps(tok, ids, x, table, 0.04, offset=1.0)
    assert _times(words) == [
        ("你", 1.04, 1.12),
        ("好，", 1.2, 1.32),
        ("世", 1.4, 1.48),
        ("界。", 1.52, 1.68),
    ]
    assert join_words([w.word for w in words]) == text


def test_spelling_branch_times_words_by_their_letters_not_the_space(tok):
    text = "Hello world"
    ids = tok(text, add_special_tokens=False).input_ids
    head = _head(tok, "chars", texts=[text])
    table = head.token_labels(len(tok))
    label = head.spelling.label
    # H e l _ l o (a blank between the two l's), the space, then w o r l d.
    spoken = [("H", 2), ("e", 3), ("l", 4), ("l", 6), ("o", 7), (" ", 9), ("w", 12), ("o", 13),
              ("r", 14), ("l", 15), ("d", 16)]  # fmt: skip
    x = _posteriors(20, len(head.tokens) + 1, [(label[c], f, f) for c, f in spoken])
    words = word_timestamps(tok, ids, x, table, 0.04)
    assert _times(words) == [("Hello", 0.08, 0.32), ("world", 0.48, 0.68)]
    # A character the branch lacks ("!"): its token has no labels, its word keeps the rest.
    ids2 = tok(text + "!", add_special_tokens=False).input_ids
    assert _times(word_timestamps(tok, ids2, x, table, 0.04))[1] == ("world!", 0.48, 0.68)


def _bursts(seconds: float, loud: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """(S,) 16 kHz audio: faint noise (-60 dB) with loud noise (-10 dB) over `loud` spans."""
    g = np.random.default_rng(seed)
    x = 0.001 * g.standard_normal(round(seconds * 16000))
    for a, b in loud:
        x[round(a * 16000) : round(b * 16000)] = 0.3 * g.standard_normal(round((b - a) * 16000))
    return x.astype(np.float32)


def test_speech_stretches_are_found_and_short_gaps_bridged():
    x = _bursts(2.0, [(0.23, 0.61), (0.95, 1.30), (1.32, 1.70)])
    assert [(round(a, 6), round(b, 6)) for a, b in speech_runs(x)] == [(0.23, 0.61), (0.95, 1.7)]
    assert speech_runs(x[:100]) == []


def test_the_audio_carries_ends_to_where_the_sound_stops(tok):
    """A CTC branch fires on a word's first frame only: the speech stretches give the rest."""
    ids = tok("please call her", add_special_tokens=False).input_ids
    head = _head(tok, "train", ids)
    table = head.token_labels(len(tok))
    spikes = [(int(table[i, 0]), f, f) for i, f in zip(ids, (3, 10, 14))]
    x = _posteriors(20, len(head.tokens) + 1, spikes)
    audio = _bursts(2.0, [(0.23, 0.61), (0.95, 1.30), (1.32, 1.70)])
    alone = word_timestamps(tok, ids, x, table, 0.1, offset=5.0)
    assert _times(alone) == [("please", 5.3, 5.4), ("call", 6.0, 6.1), ("her", 6.4, 6.5)]
    words = word_timestamps(tok, ids, x, table, 0.1, offset=5.0, samples=audio)
    assert _times(words) == [
        ("please", 5.23, 5.61),  # onset 70 ms before its frame; on to the silence
        ("call", 5.95, 6.4),  # no silence before "her": up to its start
        ("her", 6.4, 6.7),  # its stretch began long before its frame: its own frame
    ]
    # A sound that goes on: at most 1 s past the word's last label.
    long = _bursts(3.0, [(0.3, 3.0)])
    (w,) = word_timestamps(tok, ids[:1], x, table, 0.1, samples=long)
    assert (round(w.start, 6), round(w.end, 6)) == (0.3, 1.3)


def test_more_labels_than_frames_still_give_ordered_words(tok):
    ids = tok(SENTENCE, add_special_tokens=False).input_ids
    head = _head(tok)
    x = torch.randn(5, len(tok) + 1).log_softmax(-1)  # 12 labels, 5 frames: spread
    words = word_timestamps(tok, ids, x, head.token_labels(len(tok)), 0.1, offset=3.0)
    assert [w.word for w in words] == SENTENCE.split()
    assert all(3.0 <= w.start <= w.end <= 3.5 for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:]))
    assert all(0.0 <= w.confidence <= 1.0 for w in words)


def test_empty_transcript_has_no_words(tok):
    head = _head(tok)
    x = torch.randn(5, len(tok) + 1).log_softmax(-1)
    assert word_timestamps(tok, [], x, head.token_labels(len(tok)), 0.1) == []


# ---- through west.Transcriber, with a tiny random model that has a CTC branch ----------
@pytest.fixture(scope="module")
def ctc_transcriber(model_args, speech_dir, tmp_path_factory):
    """A seeded random model with a CTC branch over the test sentences' tokens."""
    from conftest import SENTENCES
    from ctc_models import write_ctc_model_dir

    path = write_ctc_model_dir(model_args, tmp_path_factory.mktemp("ctc_model"), SENTENCES)
    return west.load(path, device="cpu", max_new_tokens=8)


@pytest.fixture(scope="module")
def wavs(speech_dir):
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


def _check_words(segments, duration: float) -> None:
    """Every window's words: its text, in order, inside the window and the recording."""
    previous_end = 0.0
    for s in segments:
        assert s.words is not None
        assert " ".join(w.word for w in s.words) == s.text
        for w in s.words:
            assert s.start <= w.start <= w.end <= s.end <= duration + 1e-3
            assert w.start >= previous_end - 1e-9
            assert 0.0 <= w.confidence <= 1.0
            previous_end = w.end


def test_transcriber_words_cover_each_recording_in_order(ctc_transcriber, wavs):
    t = ctc_transcriber
    plain = t.transcribe(wavs[:3], return_segments=True)
    assert all(s.words is None for segs in plain for s in segs)  # not asked: not computed
    timed = t.transcribe(wavs[:3], word_timestamps=True)
    for segs, segs_plain, wav in zip(timed, plain, wavs):
        assert [s.text for s in segs] == [s.text for s in segs_plain]
        assert segs[0].text  # the random model says something, so the checks mean something
        _check_words(segs, sf.info(wav).duration)
    (transcript,) = t.stream(wavs[:1], word_timestamps=True)
    # decoded alone, not in a batch of 3: the same words and times (posteriors to float noise)
    assert _times(transcript.words) == _times(timed[0][0].words)
    assert next(iter(t.stream(wavs[:1]))).words is None


def test_long_recording_words_lie_in_their_windows(ctc_transcriber, wavs, tmp_path):
    pieces = []
    for _ in range(3):
        for w in wavs:
            x, sr = sf.read(w, dtype="float32")
            pieces += [x, np.zeros(int(0.6 * sr), np.float32)]
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate(pieces), sr)
    duration = sf.info(path).duration
    (transcript,) = ctc_transcriber.stream([path], word_timestamps=True, batch_size=2)
    assert len(transcript.segments) >= 2
    _check_words(transcript.segments, duration)
    words = transcript.words
    assert [w.word for w in words] == transcript.text.split()
    assert (
        words[0].start < transcript.segments[0].end
        and words[-1].end > transcript.segments[-1].start
    )


def test_a_spelling_branch_times_the_words_too(model_args, wavs, tmp_path):
    """`vocab: chars` at 25 frames a second: the words of each token's characters."""
    import dataclasses

    from conftest import SENTENCES
    from ctc_models import write_ctc_model_dir

    args = dataclasses.replace(model_args, encoder_projector_ds_rate=2)
    path = write_ctc_model_dir(args, tmp_path / "chars", SENTENCES, vocab="chars")
    t = west.load(path, device="cpu", max_new_tokens=8)
    assert t.model.ctc.spelling is not None
    for segs, wav in zip(t.transcribe(wavs[:2], word_timestamps=True), wavs):
        assert segs[0].text
        _check_words(segs, sf.info(wav).duration)


def test_a_model_without_ctc_has_only_segment_times(random_model_dir, wavs):
    plain = west.load(random_model_dir, device="cpu", max_new_tokens=4)
    with pytest.raises(ValueError, match="no CTC branch.*only segment times"):
        plain.transcribe(wavs[0], word_timestamps=True)
    with pytest.raises(ValueError, match="only segment times"):
        next(iter(plain.stream(wavs[:1], word_timestamps=True)))
