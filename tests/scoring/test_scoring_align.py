"""The alignment against jiwer (counts and per-position operations) and its invariants."""

import random
import time

import jiwer
from hypothesis import given, settings
from hypothesis import strategies as st

from west.scoring.align import CORRECT, DEL, INS, SUB, align, align_reference, count_ops
from west.scoring.normalize import normalize_chinese
from west.scoring.tokenize import char_tokens, get_tokenizer, mixed_tokens
from west.scoring.wer import score_utterances, summarize

JIWER_OPS = {"equal": CORRECT, "substitute": SUB, "insert": INS, "delete": DEL}


def jiwer_ops(ref: list[str], hyp: list[str]) -> list[str]:
    """jiwer's alignment of two token lists, one C/S/I/D letter per aligned position."""
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    ops = []
    for chunk in out.alignments[0]:
        n = max(chunk.ref_end_idx - chunk.ref_start_idx, chunk.hyp_end_idx - chunk.hyp_start_idx)
        ops += [JIWER_OPS[chunk.type]] * n
    return ops


def jiwer_counts(ref: list[str], hyp: list[str]) -> tuple[int, int, int, int]:
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return out.hits, out.substitutions, out.insertions, out.deletions


def our_counts(ref: list[str], hyp: list[str]) -> tuple[int, int, int, int]:
    c = count_ops(align(ref, hyp))
    return c.cor, c.sub, c.ins, c.dele


def random_pair(rng: random.Random, vocab: list[str], max_len: int) -> tuple[list, list]:
    ref = [rng.choice(vocab) for _ in range(rng.randint(0, max_len))]
    if rng.random() < 0.5:  # a corrupted copy: realistic, mostly-correct hypotheses
        hyp = [w if rng.random() < 0.8 else rng.choice(vocab) for w in ref if rng.random() < 0.9]
        hyp += [rng.choice(vocab) for _ in range(rng.randint(0, 2))]
    else:
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, max_len))]
    return ref, hyp


def test_word_counts_and_alignment_match_jiwer_on_random_pairs():
    rng = random.Random(1234)
    words = ["the", "a", "cat", "sat", "on", "mat", "don't", "ça", "über"]
    for _ in range(4000):
        vocab = rng.sample(words, rng.randint(1, 5))  # small vocabularies: many ties
        ref, hyp = random_pair(rng, vocab, 12)
        assert our_counts(ref, hyp) == jiwer_counts(ref, hyp), (ref, hyp)
        assert [o.op for o in align(ref, hyp)] == jiwer_ops(ref, hyp), (ref, hyp)


def test_long_utterances_match_jiwer():
    rng = random.Random(7)
    for _ in range(60):
        vocab = [str(i) for i in range(rng.randint(2, 40))]
        ref, hyp = random_pair(rng, vocab, 120)
        assert our_counts(ref, hyp) == jiwer_counts(ref, hyp)


def test_char_counts_match_jiwer_cer():
    rng = random.Random(99)
    chars = list("甚至出现交易几乎停滞的情况一二线城市")
    for _ in range(2000):
        vocab = rng.sample(chars, rng.randint(1, 6))
        ref = "".join(rng.choice(vocab) for _ in range(rng.randint(1, 15)))
        hyp = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 15)))
        c = count_ops(align(char_tokens(ref), char_tokens(hyp)))
        out = jiwer.process_characters(ref, hyp)
        assert (c.cor, c.sub, c.ins, c.dele) == (
            out.hits,
            out.substitutions,
            out.insertions,
            out.deletions,
        ), (ref, hyp)


def test_mixed_counts_match_jiwer_on_tokens():
    rng = random.Random(5)
    pieces = ["我", "们", "用", " hello ", " world ", " it's ", "3", "好", " GPU "]
    for _ in range(2000):
        vocab = rng.sample(pieces, rng.randint(1, 5))
        ref = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 10)))
        hyp = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 10)))
        r, h = mixed_tokens(ref), mixed_tokens(hyp)
        assert our_counts(r, h) == jiwer_counts(r, h), (ref, hyp)


def test_hand_checked_alignment():
    ops = align("a b c d".split(), "a x c d e".split())
    assert [(o.op, o.ref, o.hyp) for o in ops] == [
        ("C", "a", "a"),
        ("S", "b", "x"),
        ("C", "c", "c"),
        ("C", "d", "d"),
        ("I", None, "e"),
    ]


def test_rapidfuzz_alignment_is_the_textbook_one_position_by_position():
    # align() runs rapidfuzz; align_reference() is the O(n*m) table that specifies the tie-break.
    rng = random.Random(7)
    for _ in range(3000):
        vocab = [str(i) for i in range(rng.randint(1, 8))]
        ref, hyp = random_pair(rng, vocab, 25)
        assert align(ref, hyp) == align_reference(ref, hyp), (ref, hyp)


def test_long_utterance_in_linear_memory_and_time():
    # 20,000 x 20,000 tokens: the textbook table would hold 400 million cells (over 3 GB of
    # list slots and minutes of Python); rapidfuzz's bit-parallel Hirschberg takes well under 1 s.
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(3000)]
    ref = [rng.choice(vocab) for _ in range(20000)]
    hyp = [w if rng.random() < 0.9 else rng.choice(vocab) for w in ref]
    hyp = hyp[:5000] + hyp[5100:] + ["extra"] * 50
    start = time.perf_counter()
    ops = align(ref, hyp)
    assert time.perf_counter() - start < 5
    assert [o.ref for o in ops if o.ref is not None] == ref
    assert [o.hyp for o in ops if o.hyp is not None] == hyp
    assert our_counts(ref, hyp) == jiwer_counts(ref, hyp)


def test_equal_cost_tie_prefers_substitutions_unlike_kaldi():
    # Documented in the README: "a b" -> "b c" costs 2 either way; WeST and jiwer report two
    # substitutions where Kaldi's compute-wer and WeNet report one deletion and one insertion.
    assert [o.op for o in align(["a", "b"], ["b", "c"])] == [SUB, SUB]
    assert jiwer_ops(["a", "b"], ["b", "c"]) == [SUB, SUB]


tokens = st.lists(st.sampled_from(["a", "b", "c", "é", "中", "文", "x'y"]), max_size=14)


@settings(max_examples=300, deadline=None)
@given(ref=tokens, hyp=tokens)
def test_alignment_invariants(ref, hyp):
    ops = align(ref, hyp)
    # The alignment spells out both sequences...
    assert [o.ref for o in ops if o.ref is not None] == ref
    assert [o.hyp for o in ops if o.hyp is not None] == hyp
    # ...labels every position consistently...
    for o in ops:
        if o.op == CORRECT:
            assert o.ref == o.hyp
        elif o.op == SUB:
            assert o.ref is not None and o.hyp is not None and o.ref != o.hyp
    # ...and has jiwer's counts (so the minimum cost) for any input, empty ones included.
    assert our_counts(ref, hyp) == jiwer_counts(ref, hyp)
    # Edit distance is symmetric.
    assert count_ops(align(hyp, ref)).errors == count_ops(ops).errors


@settings(max_examples=100, deadline=None)
@given(seq=tokens)
def test_identity_and_empty(seq):
    assert all(o.op == CORRECT for o in align(seq, seq))
    assert count_ops(align([], seq)).ins == len(seq)
    assert count_ops(align(seq, [])).dele == len(seq)


@settings(max_examples=200, deadline=None)
@given(
    refs=st.lists(st.text(max_size=20), min_size=1, max_size=4),
    hyps=st.lists(st.text(max_size=20), min_size=1, max_size=4),
    mode=st.sampled_from(["char", "mixed"]),
)
def test_any_unicode_text_scores_without_error_and_like_jiwer(refs, hyps, mode):
    ref_map = {f"u{i}": t for i, t in enumerate(refs)}
    hyp_map = {f"u{i}": t for i, t in enumerate(hyps[: len(refs)])}
    tokenize = get_tokenizer(mode)
    scores = score_utterances(ref_map, hyp_map, tokenize, normalize_chinese, True)
    total = summarize(scores)
    r = [tokenize(normalize_chinese(t)) for t in refs]
    h = [tokenize(normalize_chinese(hyp_map.get(k, ""))) for k in ref_map]
    expected = [jiwer_counts(a, b) for a, b in zip(r, h)]
    assert (total.counts.cor, total.counts.sub, total.counts.ins, total.counts.dele) == tuple(
        map(sum, zip(*expected))
    )
    assert total.missing == len(refs) - len(hyp_map)
