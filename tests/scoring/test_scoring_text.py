"""Reading Kaldi text files, tokenising and normalising transcripts."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from west.scoring.normalize import get_normalizer, normalize_chinese, normalize_english
from west.scoring.textio import TextFileError, read_kaldi_text
from west.scoring.tokenize import char_tokens, get_tokenizer, mixed_tokens, word_tokens


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_read_splits_at_first_whitespace_and_keeps_empty_transcripts(tmp_path):
    path = write(tmp_path, "text", "u1  hello   world \nu2\n\nu3\t中文 文本\n".encode())
    assert read_kaldi_text(path) == {"u1": "hello   world", "u2": "", "u3": "中文 文本"}


def test_read_keeps_file_order(tmp_path):
    path = write(tmp_path, "text", b"b x\na y\nc z\n")
    assert list(read_kaldi_text(path)) == ["b", "a", "c"]


def test_non_utf8_names_file_and_line(tmp_path):
    path = write(tmp_path, "hyp", b"u1 ok\nu2 caf\xe9\n")
    with pytest.raises(TextFileError, match=r"hyp:2: expected UTF-8.*0xe9"):
        read_kaldi_text(path)


def test_duplicate_key_names_both_lines(tmp_path):
    path = write(tmp_path, "ref", b"u1 a\nu2 b\nu1 c\n")
    with pytest.raises(TextFileError, match=r"ref:3: duplicate utterance id 'u1'.*line 1"):
        read_kaldi_text(path)


def test_tokenizers():
    assert word_tokens(" a  b\tc ") == ["a", "b", "c"]
    assert char_tokens("甚至 出现") == ["甚", "至", "出", "现"]
    assert mixed_tokens("我用GPU训练 don't stop 2024年") == [
        "我", "用", "GPU", "训", "练", "don't", "stop", "2024", "年",
    ]  # fmt: skip
    assert mixed_tokens("日本語とEnglish") == ["日", "本", "語", "と", "English"]
    with pytest.raises(ValueError, match="unknown scoring mode 'bytes'"):
        get_tokenizer("bytes")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab中文 '.,é1\u3000", max_size=30))
def test_mixed_tokens_cover_every_non_space_character(text):
    tokens = mixed_tokens(text)
    assert "".join(tokens) == "".join(text.split())
    assert all(t and not any(c.isspace() for c in t) for t in tokens)


def test_english_normaliser_numbers_case_punctuation():
    assert normalize_english("Twenty five dollars!") == normalize_english("$25")
    assert normalize_english("HELLO, World.") == "hello world"
    assert normalize_english("I'm here") == normalize_english("i am here")
    assert normalize_english("The colour grey") == normalize_english("the color gray")


def test_chinese_normaliser_full_width_and_punctuation():
    assert normalize_chinese("今天，天气“很好”！") == "今天 天气 很好"
    assert normalize_chinese("ＡＢＣ１２３") == "abc123"
    assert normalize_chinese("Don’t　STOP.") == "don't stop"
    # In char mode, what is left after normalisation compares equal despite spacing.
    assert char_tokens(normalize_chinese("你 好，世界。")) == char_tokens("你好世界")


def test_chinese_normaliser_drops_tags_and_invisible_characters():
    assert normalize_chinese("你好<unk>世界<noise>") == "你好 世界"
    assert normalize_chinese("答案是四十二<|im_end|>") == "答案是四十二"
    assert normalize_chinese("<|endoftext|>[laughter]") == ""
    assert normalize_chinese("＜ｕｎｋ＞好") == "好"  # full-width brackets: a tag after NFKC
    # zero-width space, zero-width (non-)joiner, word joiner, byte-order mark, soft hyphen
    assert (
        normalize_chinese("中\u200b文\u200c字\u200d符\u2060号\ufeff表\u00ad格") == "中文字符号表格"
    )
    assert char_tokens(normalize_chinese("你\u200b好")) == ["你", "好"]
    assert mixed_tokens(normalize_chinese("用<unk>GPU\u200b训练")) == ["用", "gpu", "训", "练"]
    # Brackets around text with spaces are not a tag: their words are kept.
    assert normalize_chinese("[a b] <c d>") == "a b c d"


def test_none_normaliser_keeps_text():
    assert get_normalizer("none")("Hello, World") == "Hello, World"
    with pytest.raises(ValueError, match="unknown normalizer"):
        get_normalizer("french")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="AaBb中文，。！ '’ＡＢ１.\u3000-", max_size=30))
def test_chinese_normaliser_is_idempotent_and_drops_punctuation(text):
    once = normalize_chinese(text)
    assert normalize_chinese(once) == once
    assert not set(once) & set("，。！.-’")
    assert once == once.lower()
