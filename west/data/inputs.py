"""Command-line input discovery: audio files, folders of them, and `.scp` lists."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from west.data.dataset import DataError, read_kaldi_table

# Every file a folder yields, by suffix (any case): what libsndfile or FFmpeg reads (see
# west.data.audio; a video file gives its first audio track). Not ".ts": TypeScript, too.
AUDIO_SUFFIXES = (
    # audio
    ".wav", ".flac", ".mp3", ".m4a", ".m4b", ".aac", ".ogg", ".oga", ".opus", ".webm", ".weba",
    ".mka", ".wma", ".aiff", ".aif", ".aifc", ".caf", ".au", ".amr", ".ac3", ".mp2", ".w64",
    # video
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".wmv", ".flv", ".3gp", ".3g2", ".mts", ".m2ts",
    ".mpg", ".mpeg", ".ogv",
)  # fmt: skip


@dataclasses.dataclass
class AudioInput:
    """One recording to transcribe: the name printed with its text, and its file."""

    name: str
    path: str
    where: str  # for messages: the path, or `wav.scp:LINE (key K)`


def find_inputs(paths: Sequence[str | os.PathLike]) -> list[AudioInput]:
    """Expand audio files, folders (every audio or video file inside, by its suffix in
    AUDIO_SUFFIXES; recursive, sorted) and `.scp` lists.

    A file is named by its path as given; an `.scp` entry (`<key> <path>`, relative paths
    from the current folder, else from the list's folder) by its key.
    """
    found: list[AudioInput] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
            )
            if not files:
                raise DataError(
                    f"{p}: folder holds no audio or video files ({' '.join(AUDIO_SUFFIXES)})"
                )
            found += [AudioInput(str(f), str(f), str(f)) for f in files]
        elif p.suffix == ".scp" and p.is_file():
            for key, (n, wav) in read_kaldi_table(p).items():
                if wav.endswith("|"):
                    raise DataError(
                        f"{p}:{n}: pipe commands are not supported; expected a file path"
                    )
                path = wav if Path(wav).is_absolute() or Path(wav).exists() else str(p.parent / wav)
                found.append(AudioInput(key, path, f"{p}:{n} (key {key})"))
        else:
            found.append(AudioInput(str(p), str(p), str(p)))
    return found
