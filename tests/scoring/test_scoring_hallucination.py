"""Each kind of hallucination is detected; ordinary transcripts are not."""

import pytest

from west.scoring import hallucination as hal
from west.scoring.normalize import normalize_english
from west.scoring.tokenize import char_tokens, word_tokens

REF = "he hoped there would be stew for dinner turnips and carrots and bruised potatoes"


def reason(ref: str, hyp: str) -> str | None:
    return hal.hallucination_reason(
        ref, hyp, word_tokens(normalize_english(ref)), word_tokens(normalize_english(hyp))
    )


@pytest.mark.parametrize(
    "hyp",
    [
        "I apologize, but it appears that there is no speech to transcribe.",
        "I'M SORRY, I can't transcribe this audio.",
        "I’m sorry but I cannot help with that.",
        "As an AI language model, I do not have access to audio.",
        "There is no audio provided.",
        "Unable to transcribe the given input.",
    ],
)
def test_refusals(hyp):
    assert reason(REF, hyp) == hal.REFUSAL


def test_chinese_refusal():
    ref = "甚至出现交易几乎停滞的情况"
    hyp = "抱歉，这段音频中没有语音。"
    assert hal.hallucination_reason(ref, hyp, char_tokens(ref), char_tokens(hyp)) == hal.REFUSAL


def test_apology_spoken_in_the_reference_is_not_a_refusal():
    ref = "i am sorry to hear that said the old woman"
    assert reason(ref, "I'm sorry to hear that, said the old woman.") is None


def test_refusal_patterns_match_whole_words_only():
    assert hal.refusal_phrase("the piano audios were loud") is None
    assert hal.refusal_phrase("no audio at all") == "no audio"


def test_repetition_loop():
    hyp = "he hoped there would be " + "stew for dinner " * 8
    assert reason(REF, hyp) == hal.REPETITION


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_repetition_of_each_ngram_size(n):
    gram = ["alpha", "beta", "gamma", "delta"][:n]
    hyp = ["hello"] + gram * 6
    assert hal.repeated_ngram(hyp, ["hello", "world"]) == (tuple(gram), 6)


def test_short_or_partial_repetition_is_not_flagged():
    # three times is below MIN_REPEATS
    assert hal.repeated_ngram("no no no".split(), []) is None
    # a loop covering less than half of the output
    hyp = "a b c d e f g h i j k l m n o p".split() + ["x"] * 5
    assert hal.repeated_ngram(hyp, []) is None


def test_repetition_that_the_reference_has_is_not_flagged():
    ref = "no no no no no never"
    assert reason(ref, "no no no no no no never") is None


def test_output_far_longer_than_reference():
    ref = "yes"
    hyp = " ".join(f"word{i}" for i in range(hal.LENGTH_SLACK + 3))
    assert reason(ref, hyp) == hal.TOO_LONG
    # the limit itself is not exceeded
    limit = int(hal.LENGTH_RATIO * 1 + hal.LENGTH_SLACK)
    assert not hal.too_long(["w"] * limit, ["yes"])


def test_normal_long_sentence_is_not_a_hallucination():
    ref = (
        "it is to be noted that in the days of the old colonial regime the governors "
        "were appointed by the king and the assemblies were elected by the people"
    )
    hyp = (
        "it is to be noted that in the days of the old colonial regime the governor "
        "was appointed by the king and the assembly were elected by the people of the towns"
    )
    assert reason(ref, hyp) is None
    assert reason(REF, REF) is None
    assert reason(REF, "") is None
