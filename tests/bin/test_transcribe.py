"""west-transcribe: files, folders and wav.scp lists in; `name<TAB>text` lines out.

Run in-process (fast) except once through the installed console script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from safetensors.torch import save_file

import west
from west.bin.transcribe import main
from west.models.build import build_model

FLAGS = ["--max_new_tokens", "6", "--batch_size", "4", "--device", "cpu"]


# Tiny matrices: on a shared 2-core machine, threads only wait for each other.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(model_args, tmp_path_factory):
    """A 'trained' checkpoint: the random projector's weights and the config beside them."""
    path = tmp_path_factory.mktemp("exp") / "checkpoint-6"
    path.mkdir()
    model = build_model(model_args)
    state = {k: v.contiguous() for k, v in model.trainable_state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    model_args.save(path)
    return path


@pytest.fixture(scope="module")
def wavs(speech_dir):
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


@pytest.fixture(scope="module")
def api_texts(model_dir, wavs):
    model = west.load(model_dir, max_new_tokens=6, batch_size=4)
    return dict(zip(wavs, model.transcribe(wavs)))


def _lines(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t", 1)) for line in lines]


def test_files_give_the_api_texts(model_dir, wavs, api_texts, tmp_path):
    out = tmp_path / "hyp.txt"
    # Given in another order: lines follow the command line.
    order = wavs[::-1]
    assert main(["--model_dir", str(model_dir), "--output", str(out), *FLAGS, *order]) == 0
    assert _lines(out) == [(w, api_texts[w]) for w in order]


def test_folder_and_wav_scp(model_dir, wavs, api_texts, speech_dir, tmp_path):
    # A folder: every wav/flac inside, recursive, sorted (data.jsonl and text are not audio).
    folder = tmp_path / "recordings"
    (folder / "sub").mkdir(parents=True)
    for i, w in enumerate(wavs):
        shutil.copy(w, folder / ("sub" if i % 2 else "") / Path(w).name)
    out = tmp_path / "folder.txt"
    assert main(["--model_dir", str(model_dir), "--output", str(out), *FLAGS, str(folder)]) == 0
    got = _lines(out)
    assert [name for name, _ in got] == sorted(str(p) for p in folder.rglob("*.wav"))
    assert [text for _, text in got] == [api_texts[str(speech_dir / Path(n).name)] for n, _ in got]

    # A wav.scp: lines are named by key; relative paths are read from the list's folder.
    scp = folder / "wav.scp"
    scp.write_text("".join(f"k{i} {Path(w).name}\n" for i, w in enumerate(wavs[:3])))
    for w in wavs[:3]:
        shutil.copy(w, folder)
    out = tmp_path / "scp.txt"
    assert main(["--model_dir", str(model_dir), "--output", str(out), *FLAGS, str(scp)]) == 0
    assert _lines(out) == [(f"k{i}", api_texts[w]) for i, w in enumerate(wavs[:3])]


def test_bad_inputs_are_named_or_skipped(model_dir, wavs, api_texts, tmp_path, caplog, capsys):
    missing = tmp_path / "missing.wav"
    not_audio = tmp_path / "notes.flac"
    not_audio.write_bytes(b"\x00\x01 not audio")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((16000, 2), np.float32), 44100)
    for bad in (missing, not_audio, silent):
        caplog.clear()
        assert main(["--model_dir", str(model_dir), *FLAGS, wavs[0], str(bad)]) == 1
        assert str(bad) in caplog.text and "--skip_bad" in caplog.text
    scp = tmp_path / "wav.scp"
    scp.write_text(f"good {wavs[0]}\nbad {missing}\n")
    caplog.clear()
    assert main(["--model_dir", str(model_dir), *FLAGS, str(scp)]) == 1
    assert f"{scp}:2 (key bad)" in caplog.text and str(missing) in caplog.text

    capsys.readouterr()
    caplog.clear()
    argv = ["--model_dir", str(model_dir), "--skip_bad", *FLAGS]
    assert main(argv + [str(missing), wavs[0], str(not_audio), str(silent)]) == 0
    assert capsys.readouterr().out == f"{wavs[0]}\t{api_texts[wavs[0]]}\n"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for bad in (missing, not_audio, silent):
        assert any(str(bad) in w for w in warnings), bad
    assert "skipped 3 bad input(s) of 4" in caplog.text


def test_console_script(model_dir, wavs, api_texts):
    exe = Path(sys.executable).parent / "west-transcribe"
    if not exe.is_file():
        pytest.skip("west-transcribe is not installed (pip install -e .)")
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [str(exe), "--model_dir", str(model_dir), *FLAGS, *wavs[:2]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "".join(f"{w}\t{api_texts[w]}\n" for w in wavs[:2])


def test_missing_model_is_a_clear_error(model_dir, wavs, tmp_path, caplog):
    assert main(["--model_dir", str(tmp_path / "nope"), wavs[0]]) == 1
    assert f"{tmp_path / 'nope'}: no such folder" in caplog.text
    (tmp_path / "run").mkdir()
    shutil.copy(model_dir / "west_config.json", tmp_path / "run")
    assert main(["--model_dir", str(tmp_path / "run"), wavs[0]]) == 1
    assert str(tmp_path / "run" / "model.safetensors") in caplog.text
