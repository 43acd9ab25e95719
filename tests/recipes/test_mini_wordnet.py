"""examples/mini's second text source: WordNet's example sentences (local/wordnet_sentences.py),
read from the real Debian package."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINI_LOCAL  # noqa: F401  (puts examples/mini/local on sys.path)
from fortune_sentences import clean_sentence, fortune_sentences, transcript
from wordnet_sentences import MIN_WORDS, WORDNET_DIR, as_sentence, wordnet_sentences

pytestmark = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(), reason="needs wordnet-base (tools/install.sh)"
)


def test_examples_become_sentences_espeak_reads_as_written():
    assert as_sentence("she was able to swim") == "She was able to swim."
    assert as_sentence("  was it  able? ") == "Was it able?"
    sentences = wordnet_sentences()
    assert len(sentences) > 20000  # about 34,000 from WordNet 3.0
    txts = [transcript(s) for s in sentences]
    assert len(set(txts)) == len(txts)
    assert all(clean_sentence(s) == s for s in sentences)
    assert all(len(t.split()) >= MIN_WORDS for t in txts)
    assert not any('"' in s or "|" in s for s in sentences)
    # the gloss's own words are not examples: the first noun synset's gloss is
    # "that which is perceived or known or inferred to have its own distinct existence"
    assert not any(t.startswith("that which is perceived") for t in txts)


def test_wider_vocabulary_than_the_fortunes():
    words = lambda ss: {w for s in ss for w in transcript(s).split()}  # noqa: E731
    fortunes, wordnet = words(fortune_sentences()), words(wordnet_sentences())
    assert len(wordnet - fortunes) > 5000


def test_seen_transcripts_are_left_out(tmp_path: Path):
    first = wordnet_sentences()[:50]
    rest = wordnet_sentences(seen=[transcript(s) for s in first])
    assert not {transcript(s) for s in rest} & {transcript(s) for s in first}
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit, match="install WordNet"):
        wordnet_sentences(missing)
