"""Hypothesis files written while decoding: `key text` lines, resumable, one part per rank.

One process decodes into the result file itself; rank r of several into its own part file
`<result>.rank<r>` beside it. A killed writer leaves at most half a line at the end, which
is dropped. Before decoding, the part files of an earlier run (with any number of
processes) are folded into the result file, so its keys are what is done; after decoding,
the result file is rewritten whole, in the data list's order, one line per key.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path


def part_path(result_path: Path, rank: int) -> Path:
    """The file rank `rank` of a multi-process run writes its lines to."""
    return result_path.with_name(f"{result_path.name}.rank{rank}")


def part_files(result_path: Path) -> list[Path]:
    """Part files of `result_path` left by any run, whatever its number of processes."""
    prefix = f"{result_path.name}.rank"
    found = result_path.parent.glob(glob.escape(prefix) + "*")
    return sorted(
        (p for p in found if p.name[len(prefix) :].isdigit()),
        key=lambda p: int(p.name[len(prefix) :]),
    )


def whole_lines(path: Path) -> bytes:
    """The file's bytes up to its last newline: a killed writer's half line is left out."""
    if not path.is_file():
        return b""
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def read_done_keys(path: Path) -> set[str]:
    """Keys already written to a result file (only whole lines count)."""
    if not path.is_file():
        return set()
    data = whole_lines(path)
    if len(data) < path.stat().st_size:
        # A killed writer left half a line: cut it so the file holds only whole lines.
        path.write_bytes(data)
    return {line.split(maxsplit=1)[0] for line in data.decode("utf-8").splitlines() if line.strip()}


def gather_parts(result_path: Path) -> int:
    """Append the whole lines of every part file to `result_path`, then remove the parts.

    Returns the number of part files folded in. A kill between the append and the removal
    repeats lines, never loses one; `merge` keeps one line per key.
    """
    read_done_keys(result_path)  # drops a half-written last line
    parts = part_files(result_path)
    if not parts:
        return 0
    with open(result_path, "ab") as out:
        for part in parts:
            out.write(whole_lines(part))
        out.flush()
        os.fsync(out.fileno())
    for part in parts:
        part.unlink()
    return len(parts)


def merge(result_path: Path, keys: Sequence[str]) -> int:
    """Rewrite `result_path` (and its part files) as one line per key, in `keys` order.

    Lines whose key is not in `keys` (an earlier run on another list) follow, in file
    order. The file is replaced whole, so a kill leaves the old one. Returns its lines.
    """
    gather_parts(result_path)
    lines: dict[str, str] = {}
    for line in whole_lines(result_path).decode("utf-8").splitlines():
        if line.strip():
            lines.setdefault(line.split(maxsplit=1)[0], line)
    order = [k for k in dict.fromkeys(keys) if k in lines]
    listed = set(order)
    order += [k for k in lines if k not in listed]
    tmp = result_path.with_name(result_path.name + ".merging")
    tmp.write_text("".join(lines[k] + "\n" for k in order), encoding="utf-8")
    os.replace(tmp, result_path)
    return len(order)
