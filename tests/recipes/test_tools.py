"""The recipes' shell and python helpers: parse_options.sh, make_data.py, normalize_text.py,
check_models.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from west.data.dataset import DataError
from west.data.kaldi import normalize_data_dir, pair, read_audio_list, read_transcripts

TOOLS = Path(__file__).resolve().parents[2] / "tools"
EXAMPLE_CONF = TOOLS.parent / "examples" / "aishell" / "conf" / "qwen2-1.5b_whisper-tiny.yaml"

SCRIPT = f"""\
stage=0          # first stage
exp_dir=exp/a    # where it goes
beams="1 3"      # beam sizes
. {TOOLS}/parse_options.sh
set -euo pipefail
echo "stage=$stage exp_dir=$exp_dir beams=$beams rest=$*"
"""


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT)
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, cwd=tmp_path, timeout=30
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "stage=0 exp_dir=exp/a beams=1 3 rest="),
        (["--stage", "2", "--exp-dir", "x y"], "stage=2 exp_dir=x y beams=1 3 rest="),
        (["--exp_dir=b", "--beams", "", "pos", "--stage", "5"], "stage=0 exp_dir=b beams= rest=pos --stage 5"),
        (["--stage", "3", "--", "--exp_dir", "z"], "stage=3 exp_dir=exp/a beams=1 3 rest=--exp_dir z"),
    ],
)  # fmt: skip
def test_parse_options_sets_variables(tmp_path, args, expected):
    proc = run_script(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


@pytest.mark.parametrize("args", [["--stag", "1"], ["--no-such-option", "1"], ["--stage"]])
def test_parse_options_rejects(tmp_path, args):
    proc = run_script(tmp_path, *args)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "option" in proc.stderr
    if args[0] != "--stage":
        assert "unknown option" in proc.stderr and "--stage" in proc.stderr  # with the usage


def test_parse_options_help(tmp_path):
    proc = run_script(tmp_path, "--help")
    assert proc.returncode == 0
    assert "--stage" in proc.stdout and "first stage" in proc.stdout and "[0]" in proc.stdout
    assert "--beams" in proc.stdout and "[1 3]" in proc.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_pairing_reports_gaps(tmp_path):
    audio = {"a1": "/x/a1.wav", "a2": "/x/a2.wav", "a3": "/x/a3.wav"}
    texts = {"a1": "one", "a2": "", "b1": "other set", "zz": "lost"}
    p = pair({tmp_path / "a": audio, tmp_path / "b": {"b1": "/x/b1.wav"}}, texts)
    assert [e.key for e in p.sets[0].entries] == ["a1"]
    assert p.sets[0].without_text == ["a2", "a3"]  # empty transcript = none
    assert p.without_audio == ["zz"]
    report = "\n".join(p.report())
    assert "a: 1 utterances; 2 audio file(s) without transcript" in report
    assert "b: 1 utterances\n" in report and "1 transcript(s) without audio" in report


def test_duplicate_keys_are_errors(tmp_path):
    lst = write(tmp_path / "audio.list", "/c/s1/u1.wav\n/c/s2/u1.wav\n")
    with pytest.raises(DataError, match="audio.list:2: audio key 'u1' again"):
        read_audio_list(lst)
    t1, t2 = write(tmp_path / "t1", "u1 a\n"), write(tmp_path / "t2", "u1 b\n")
    with pytest.raises(DataError, match="t2:1: transcript key 'u1' again"):
        read_transcripts([t1, t2])
    with pytest.raises(DataError, match="in both"):
        pair({"a": {"u1": "/1"}, "b": {"u1": "/2"}}, {"u1": "x"})


def test_make_data_and_normalize(tmp_path, capsys):
    wavs = [tmp_path / "spk1" / f"k{i}.wav" for i in (2, 1)]
    lst = write(tmp_path / "audio.list", "".join(f"{w}\n" for w in wavs))
    text = write(tmp_path / "trans.txt", "k1 上海 的 房价\nk2 北京 天气\n")
    out = tmp_path / "data" / "test"
    make_data = load_tool("make_data").main
    assert make_data(["--speaker_regex", "^(k)", "--text", str(text), f"{out}={lst}"]) == 0
    assert f"{out}: 2 utterances" in capsys.readouterr().err
    assert (out / "wav.scp").read_text() == f"k1 {wavs[1]}\nk2 {wavs[0]}\n"
    assert (out / "utt2spk").read_text() == "k1 k\nk2 k\n"
    assert (out / "spk2utt").read_text() == "k k1 k2\n"

    normalize_data_dir(out, ["remove_spaces"])
    normalize_data_dir(out, ["remove_spaces"])  # from text.orig again: same result
    assert (out / "text").read_text(encoding="utf-8") == "k1 上海的房价\nk2 北京天气\n"
    assert (out / "text.orig").read_text(encoding="utf-8") == text.read_text(encoding="utf-8")
    assert json.loads((out / "data.jsonl").read_text(encoding="utf-8").splitlines()[0]) == {
        "key": "k1",
        "wav": str(wavs[1]),
        "txt": "上海的房价",
    }
    # nothing pairs up: an error naming the set, not an empty data dir
    assert make_data(["--text", str(write(tmp_path / "none", "zz a\n")), f"{out}={lst}"]) == 1
    assert "no utterance has both audio" in capsys.readouterr().err


def load_tool(name: str):
    """A tools/ script as a module, to call its main() in this process (no start-up cost)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_models(tmp_path, tiny_llm, tiny_whisper, capsys):
    main = load_tool("check_models").main
    ok = [
        "--llm_model_name_or_path", str(tiny_llm),
        "--whisper_model_name_or_path", str(tiny_whisper),
    ]  # fmt: skip
    assert main(["--config", str(EXAMPLE_CONF), *ok]) == 0
    assert f"llm: local folder {tiny_llm}" in capsys.readouterr().err
    assert main(["--config", str(EXAMPLE_CONF), *ok[:2], "--whisper_model_name_or_path", "v9"]) == 1
    assert (
        "v9: not a checkpoint file, Whisper folder or openai-whisper name"
        in capsys.readouterr().err
    )
    bad = write(tmp_path / "bad.yaml", "projector: conv1d\nprojektor_hidden_size: 3\n")
    assert main(["--config", str(bad), *ok]) == 1
    assert "['projektor_hidden_size'] are not west-train flags" in capsys.readouterr().err


@pytest.fixture
def http_server(tmp_path):
    """A local web server over tmp_path/www (stands in for an openslr mirror)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_and_untar(tmp_path, http_server):
    import hashlib
    import tarfile

    root, url = http_server
    (tmp_path / "part" / "s1").mkdir(parents=True)
    (tmp_path / "part" / "s1" / "a.txt").write_text("x")
    with tarfile.open(root / "part.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "part", arcname="LibriSpeech/part")
    md5 = hashlib.md5((root / "part.tar.gz").read_bytes()).hexdigest()
    script, dest = str(TOOLS / "download_and_untar.sh"), tmp_path / "corpus"

    def run(*args):
        return subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=60)

    proc = run(f"{url}/part.tar.gz", "0" * 32, str(tmp_path / "bad"))
    assert proc.returncode == 1 and f"expected {'0' * 32}" in proc.stderr
    proc = run(f"{url}/part.tar.gz", md5, str(dest))
    assert proc.returncode == 0, proc.stderr
    assert (dest / "LibriSpeech" / "part" / "s1" / "a.txt").read_text() == "x"
    assert "already unpacked" in run(f"{url}/part.tar.gz", md5, str(dest)).stdout


def decode_tag(capsys, *argv: str) -> str:
    assert load_tool("decode_tag").main(list(argv)) == 0
    return capsys.readouterr().out.strip()


def test_decode_tag_names_every_setting_that_changes_the_text(tmp_path, capsys):
    conf = write(tmp_path / "c.yaml", "lora_rank: 0\ndecode:\n  engine: hf\n  max_new_tokens: 50\n")
    ckpt = str(tmp_path / "exp" / "checkpoint-600")
    base = ["--model_dir", ckpt, "--dtype", "bfloat16"]
    assert decode_tag(capsys, "--", *base) == "ckpt-600_west_ctc0_bfloat16_tok200"
    # The conf's `decode:` mapping counts, flags given after it win, as in west-recognize.
    tag = decode_tag(capsys, "--", *base, "--config", str(conf), "--max_new_tokens", "64")
    assert tag == "ckpt-600_hf_ctc0_bfloat16_tok64"
    # Settings that leave the text alone are not in it; others are, by name.
    tag = decode_tag(
        capsys, "--model_name", "final", "--", *base, "--batch_size", "3", "--device", "cpu",
        "--ctc_weight", "0.50", "--cut_long_audio", "--max_speech_seconds", "60",
        "--llm_model_name_or_path", "/m/SmolLM2-135M-Instruct/",
    )  # fmt: skip
    assert tag == (
        "final_west_ctc0.5_bfloat16_tok200_cut_long_audio"
        "_llm_model_name_or_path-SmolLM2-135M-Instruct_max_speech_seconds60"
    )
    assert load_tool("decode_tag").main(["--", "--config", str(tmp_path / "no.yaml")]) == 1
    assert "no.yaml: config file not found" in capsys.readouterr().err
