"""Using a trained model: west.load / Transcriber, long-audio splitting, west-export.

The model is tiny and random, so its texts are garbage, but deterministic: the tests
compare texts between paths (file vs array, checkpoint vs export), never to references.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

import west
from west.api import Segment
from west.bin.export import main as export_main
from west.data.audio import AudioError
from west.data.segment import frame_energy, split_points
from west.export import export_model, training_summary
from west.models.build import build_model

SR = 16000


# ---- west.data.segment on synthetic signals -----------------------------------------------


def _phrases(pauses: list[tuple[float, float]], seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like noise: 'words' of 0.2-0.5 s, each with a 40 ms closure (as quiet as a
    pause, but short) in the middle, 60-120 ms gaps between words, and silent `pauses`
    ((start, end) in seconds); a faint noise floor everywhere, so silence is not digital."""
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, 1e-3, int(seconds * SR))
    t = 0.0
    while t < seconds:
        if any(a - 0.05 <= t < b for a, b in pauses):
            t = next(b for a, b in pauses if a - 0.05 <= t < b) + 0.05
            continue
        word = rng.uniform(0.2, 0.5)
        if any(t < a < t + word + 0.05 for a, _ in pauses):
            word = min(a for a, _ in pauses if t < a) - t - 0.05  # stop short of the pause
        i, j = int(t * SR), int(min(t + word, seconds) * SR)
        if j > i:
            audio[i:j] += 0.3 * rng.normal(0, 1, j - i) * np.hanning(j - i) ** 0.2
            closure = (i + j) // 2
            audio[closure : closure + int(0.04 * SR)] = rng.normal(0, 1e-3, int(0.04 * SR))[
                : len(audio[closure : closure + int(0.04 * SR)])
            ]
        t += word + rng.uniform(0.06, 0.12)
    return audio.astype(np.float32)


def _check_spans(spans, n, max_seconds=28.0):
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a == prev_b for (a, _), (_, prev_b) in zip(spans[1:], spans[:-1]))
    assert all(0 < b - a <= max_seconds * SR for a, b in spans)


def test_frame_energy_geometry_and_level():
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)  # 1 s
    energy = frame_energy(tone)
    assert len(energy) == 1 + (SR - 400) // 160  # 25 ms frames, 10 ms hop
    assert np.allclose(energy, 10 * np.log10(0.5**2 / 2), atol=0.2)
    assert frame_energy(np.zeros(SR)).max() == -100.0


def test_short_audio_is_one_window():
    assert split_points(np.ones(10 * SR)) == [(0, 10 * SR)]
    assert split_points(np.ones(28 * SR)) == [(0, 28 * SR)]


def test_cuts_land_in_the_pauses():
    # Pauses every ~5 s; only some fall in the last 8 s of a 28 s window.
    pauses = [
        (s, s + 0.5) for s in (4.0, 9.3, 15.1, 21.0, 24.2, 31.5, 38.0, 44.6, 50.3, 57.7, 63.9)
    ]
    audio = _phrases(pauses, 70.0)
    spans = split_points(audio)
    _check_spans(spans, len(audio))
    assert len(spans) == 3
    for _, cut in spans[:-1]:
        inside = [(a, b) for a, b in pauses if a * SR < cut < b * SR]
        assert inside, f"cut at {cut / SR:.2f} s is not in a pause"
        a, b = inside[0]
        assert abs(cut / SR - (a + b) / 2) < 0.1  # the middle of the pause, away from words


def test_cut_prefers_the_quietest_pause():
    # Two pauses in the search region of the first window: one with a hum, one quiet.
    pauses = [(22.0, 22.5), (25.0, 25.5)]
    audio = _phrases(pauses, 40.0, seed=1)
    hum = 0.02 * np.sin(2 * np.pi * 100 * np.arange(int(0.5 * SR)) / SR)
    audio[25 * SR : int(25.5 * SR)] += hum.astype(np.float32)
    (_, cut), _ = split_points(audio)
    assert 22.0 * SR < cut < 22.5 * SR
    # Without the hum the later pause wins ties, keeping windows long.
    (_, cut), _ = split_points(_phrases(pauses, 40.0, seed=1))
    assert 25.0 * SR < cut < 25.5 * SR


def test_no_pause_still_gives_windows_under_the_limit():
    audio = np.random.default_rng(0).normal(0, 0.3, 65 * SR).astype(np.float32)
    spans = split_points(audio)
    _check_spans(spans, len(audio))
    assert len(spans) == 3
    # Nor is a last window of a few samples left over.
    spans = split_points(audio[: int(28.05 * SR)])
    assert len(spans) == 2 and spans[-1][1] - spans[-1][0] >= SR


# ---- west.load / Transcriber ------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny matrices: on a shared 2-core machine, threads only wait for each other (20x slower).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_model_dir(model_args, path, trainer_state: dict | None = None):
    """A 'trained' checkpoint folder: the random projector's weights and the config."""
    model = build_model(model_args)
    path.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in model.trainable_state_dict().items()},
        str(path / "model.safetensors"),
    )
    model_args.save(path)
    if trainer_state is not None:
        (path / "trainer_state.json").write_text(json.dumps(trainer_state))
    return path


TRAINER_STATE = {
    "global_step": 40,
    "max_steps": 40,
    "epoch": 2.0,
    "log_history": [
        {"loss": 5.1234, "step": 20, "epoch": 1.0},
        {"loss": 3.5678, "step": 40, "epoch": 2.0},
        {"train_loss": 4.2, "step": 40},
    ],
}


@pytest.fixture(scope="module")
def model_dir(model_args, tmp_path_factory):
    return make_model_dir(
        model_args, tmp_path_factory.mktemp("exp") / "checkpoint-40", TRAINER_STATE
    )


@pytest.fixture(scope="module")
def transcriber(model_dir):
    return west.load(model_dir, device="cpu", max_new_tokens=6)


@pytest.fixture(scope="module")
def wavs(speech_dir):
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


@pytest.fixture(scope="module")
def texts(transcriber, wavs):
    return transcriber.transcribe(wavs)


def test_transcribe_files(transcriber, wavs, texts):
    assert isinstance(texts, list) and len(texts) == len(wavs)
    assert all(isinstance(t, str) and "\n" not in t for t in texts)
    assert transcriber.transcribe(wavs) == texts  # deterministic


def test_arrays_mono_and_stereo_match_the_file(transcriber, wavs):
    data, sr = sf.read(wavs[0], dtype="float32")
    assert sr != SR  # espeak writes 22.05 kHz: the array is resampled like the file
    from_file = transcriber.transcribe(wavs[0])
    assert isinstance(from_file, str)
    assert transcriber.transcribe(data, sample_rate=sr) == from_file
    assert transcriber.transcribe(np.stack([data, data], axis=1), sample_rate=sr) == from_file
    with pytest.raises(ValueError, match="sample_rate"):
        transcriber.transcribe(data)
    with pytest.raises(ValueError, match=r"\(channels, T\)"):
        transcriber.transcribe(np.stack([data, data]), sample_rate=sr)


def test_segments_of_short_files(transcriber, wavs, texts):
    segments = transcriber.transcribe(wavs, return_segments=True)
    for segs, text, wav in zip(segments, texts, wavs):
        assert len(segs) == 1 and isinstance(segs[0], Segment)
        assert segs[0].start == 0.0
        assert segs[0].end == pytest.approx(sf.info(wav).duration, abs=1e-3)
        assert segs[0].text == text


def test_long_recording_is_cut_at_pauses_and_every_window_decoded(transcriber, wavs, tmp_path):
    # ~75 s: the espeak sentences with 0.6 s silences, four times over, as 22.05 kHz stereo.
    gap_seconds, pieces, pauses, t = 0.6, [], [], 0.0
    for _ in range(4):
        for w in wavs:
            x, sr = sf.read(w, dtype="float32")
            loud = np.flatnonzero(np.abs(x) > 0.01)
            if pauses or t:
                pauses[-1] = (pauses[-1][0], t + loud[0] / sr)  # this sentence's first sound
            pieces += [x, np.zeros(int(gap_seconds * sr), np.float32)]
            pauses.append((t + loud[-1] / sr, None))  # silence from its last sound on
            t += (len(x) + int(gap_seconds * sr)) / sr
    audio = np.concatenate(pieces[:-1])
    path = tmp_path / "long.wav"
    sf.write(path, np.stack([audio, audio], axis=1), sr)
    duration = len(audio) / sr
    assert duration > 70

    calls = []
    generate = transcriber.model.generate

    def counting_generate(*args, **kwargs):
        out = generate(*args, **kwargs)
        calls.append(len(out))
        return out

    transcriber.model.generate = counting_generate
    try:
        (segs,) = transcriber.transcribe([path], return_segments=True, batch_size=2)
        text = transcriber.transcribe(path, batch_size=2)
    finally:
        del transcriber.model.generate
    assert 3 <= len(segs) <= 4
    assert segs[0].start == 0 and segs[-1].end == pytest.approx(duration, abs=1e-3)
    for a, b in zip(segs, segs[1:]):
        assert a.end == b.start
        assert any(p0 < a.end < p1 for p0, p1 in pauses[:-1]), f"cut at {a.end:.2f} s is in speech"
    assert all(s.end - s.start < 30 for s in segs)
    # Every window decoded, two at a time; the texts are the windows' texts joined.
    assert sum(calls[:2]) == len(segs) and max(calls) <= 2
    assert text == " ".join(s.text for s in segs if s.text)


def test_bad_inputs_name_the_file(transcriber, wavs, tmp_path):
    missing = tmp_path / "missing.wav"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio\n")
    silent = tmp_path / "silent.flac"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    for bad, why in ((missing, "not found"), (not_audio, "not readable"), (silent, "silent")):
        with pytest.raises(AudioError, match=why) as e:
            transcriber.transcribe([wavs[0], bad])
        assert str(bad) in str(e.value)
    out = transcriber.transcribe([missing, wavs[0], silent], skip_bad=True)
    assert out[0] is None and out[2] is None and out[1] == transcriber.transcribe(wavs[0])


# ---- export -------------------------------------------------------------------------


def test_training_summary(model_dir):
    summary = training_summary(model_dir)
    assert summary["global_step"] == 40 and summary["final_loss"] == 3.5678
    # From the run folder, the newest checkpoint's state is found.
    assert training_summary(model_dir.parent)["global_step"] == 40


def test_export_loads_and_gives_identical_output(model_dir, model_args, wavs, texts, tmp_path):
    out = tmp_path / "my-asr"
    assert export_main(["--model_dir", str(model_dir), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "model.safetensors",
        "west_config.json",
    ]
    card = (out / "README.md").read_text()
    n_projector = sum(
        v.numel()
        for k, v in build_model(model_args).state_dict().items()
        if k.startswith("projector.")
    )
    for needed in (
        model_args.llm_model_name_or_path,
        model_args.whisper_model_name_or_path,
        "`conv1d`",
        f"{n_projector:,} parameters",
        f"`{model_args.prompt}`",
        "steps: 40",
        "final training loss: 3.5678",
        f"west-transcribe --model_dir {out} a.wav",
        f'west.load("{out}"',
    ):
        assert needed in card, needed
    assert json.loads((out / "west_config.json").read_text())["projector_model_path"] is None
    assert west.load(out, max_new_tokens=6).transcribe(wavs) == texts
    # A second export into the same folder is refused unless asked for.
    assert export_main(["--model_dir", str(model_dir), "--output", str(out)]) == 1
    assert export_model(model_dir, out, overwrite=True) == out
