"""Markdown results tables built from decode folders, ready to paste into a README.

An experiment folder holds one folder per decode, named after its settings, each with the
``wer`` file that ``west-score`` printed::

    EXP_DIR/decode_<testset>_beam<N>_<tag>/wer   (tag: the other settings, tools/decode_tag.py)
    EXP_DIR/decode_<testset>_beam<N>/wer         (older runs; or EXP_DIR/decode/<testset>_beam<N>/)
    EXP_DIR/west_config.json                     (optional: names the model's parts)

The tag (e.g. ``final_west_ctc0.5_bfloat16_tok200``) is read as one opaque label: decodes with
different tags are different rows of the tables. A ``wer`` file scored with a biasing list
(``west-score --biasing``) also has ``%B-WER`` and ``%U-WER`` lines: those decodes get a third
table, WER, B-WER and U-WER side by side (:func:`biasing_table`).

``west_config.json`` (at the top, else in the latest ``checkpoint-N/``) keys used:
``llm_model_name_or_path``, ``whisper_model_name_or_path``, ``projector`` and, optionally,
``projector_params`` (an int). Without that key, the projector's size is counted from the
shapes of the ``projector.*`` tensors in the ``model.safetensors`` beside the config, if any
(its header only: no weights are read).
Without a config, the folder name is parsed: ``<llm>-whisper-<size>[-<projector>]`` (``-`` or
``_`` as separators).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from west.checkpoint import CONFIG_NAME, WEIGHTS_NAME, newest_file

# Published parameter counts of the openai-whisper checkpoints (whisper's README).
WHISPER_SIZES = {
    "tiny": "39M",
    "base": "74M",
    "small": "244M",
    "medium": "769M",
    "large": "1.5G",
    "turbo": "809M",
}
_DECODE_DIR = re.compile(r"^(?:decode_)?(?P<testset>.+?)_beam(?P<beam>\d+)(?:_(?P<tag>.+))?$")
_RAW_FILTERED = re.compile(r"^%WER raw/filtered (?P<raw>\S+)/(?P<filtered>\S+)")
_KALDI_WER = re.compile(r"^%WER (?P<raw>\d+(?:\.\d+)?|undefined) \[")
_BIASING_WER = re.compile(r"^%(?P<side>[BU])-WER (?P<rate>\d+(?:\.\d+)?|undefined) \[")
_FOLDER = re.compile(
    r"^(?P<llm>.*?)[-_]?whisper[-_]?(?P<size>(?:tiny|base|small|medium|large|turbo)"
    r"(?:[-_]?v\d)?(?:\.en)?)(?:[-_](?P<projector>.+))?$",
    re.IGNORECASE,
)


class ResultsError(ValueError):
    """A decode folder or config that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Decode:
    """The score of one decode: ``raw`` and optionally ``filtered`` WER as printed.

    ``tag`` names its other settings (model, engine, ...); "" for an untagged older folder.
    ``biased`` and ``unbiased``: its B-WER and U-WER as printed, when scored with a biasing list.
    """

    testset: str
    beam: int
    raw: str
    filtered: str | None = None
    tag: str = ""
    biased: str | None = None
    unbiased: str | None = None

    @property
    def cell(self) -> str:
        return self.raw if self.filtered is None else f"{self.raw}/{self.filtered}"

    @property
    def sort_value(self) -> float:
        """The raw WER as a number (undefined sorts last), for picking the best beam."""
        try:
            return float(self.raw)
        except ValueError:
            return float("inf")


@dataclass
class Experiment:
    """One training run: what it is built from and its decodes."""

    path: Path
    llm: str
    encoder: str
    projector: str
    decodes: list[Decode] = field(default_factory=list)

    def testsets(self) -> set[str]:
        return {d.testset for d in self.decodes}

    def beams(self) -> set[int]:
        return {d.beam for d in self.decodes}

    def tags(self) -> list[str]:
        """The decoding settings present, sorted ("" first); [""] without decodes."""
        return sorted({d.tag for d in self.decodes}, key=natural_key) or [""]

    def get(self, testset: str, beam: int, tag: str = "") -> Decode | None:
        for d in self.decodes:
            if d.testset == testset and d.beam == beam and d.tag == tag:
                return d
        return None

    def best(self, testset: str, tag: str = "") -> Decode | None:
        found = [d for d in self.decodes if d.testset == testset and d.tag == tag]
        return min(found, key=lambda d: (d.sort_value, d.beam)) if found else None


def read_wer_file(path: Path) -> tuple[str, str | None]:
    """``(raw, filtered)`` from a ``west-score`` output; ``filtered`` is None if absent."""
    raw = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _RAW_FILTERED.match(line)
        if m:
            return m["raw"], m["filtered"]
        m = _KALDI_WER.match(line)
        if m and raw is None:
            raw = m["raw"]
    if raw is None:
        raise ResultsError(f"{path}: no '%WER <number> [' line; expected west-score's output")
    return raw, None


def read_biasing_rates(path: Path) -> tuple[str, str] | None:
    """``(B-WER, U-WER)`` as printed in a ``west-score --biasing`` output, else None."""
    rates = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _BIASING_WER.match(line)
        if m:
            rates.setdefault(m["side"], m["rate"])
    if not rates:
        return None
    if len(rates) == 1:
        raise ResultsError(f"{path}: a %B-WER line without %U-WER, or the reverse; expected both")
    return rates["B"], rates["U"]


def find_decodes(exp_dir: Path) -> list[Decode]:
    """Every ``decode_<testset>_beam<N>[_<tag>]/wer`` (or ``decode/<testset>_beam<N>/wer``)."""
    candidates = [p for p in exp_dir.glob("decode_*/wer")]
    candidates += [p for p in exp_dir.glob("decode/*/wer")]
    decodes = []
    for wer in sorted(candidates):
        m = _DECODE_DIR.match(wer.parent.name)
        if not m:
            continue
        raw, filtered = read_wer_file(wer)
        biased, unbiased = read_biasing_rates(wer) or (None, None)
        decodes.append(
            Decode(m["testset"], int(m["beam"]), raw, filtered, m["tag"] or "", biased, unbiased)
        )
    return decodes


def encoder_name(name_or_path: str) -> str:
    """``tiny`` -> ``Whisper tiny 39M``; ``.../whisper-large-v3.pt`` -> ``Whisper large-v3 1.5G``."""
    base = Path(name_or_path.rstrip("/")).name.removesuffix(".pt")
    base = re.sub(r"^whisper[-_]?", "", base, flags=re.IGNORECASE)
    size = WHISPER_SIZES.get(re.split(r"[-_.]", base.lower())[0])
    return f"Whisper {base} {size}" if size else f"Whisper {base}"


def projector_name(projector: str, params: int | None) -> str:
    """``conv1d`` with 13320000 parameters -> ``conv1d 13.32M``."""
    return f"{projector} {params / 1e6:.2f}M" if params else projector


def find_config(exp_dir: Path) -> Path | None:
    """``exp_dir/west_config.json``, else the one in the highest ``checkpoint-N/``, else None."""
    return newest_file(exp_dir, CONFIG_NAME)


def count_projector_params(weights: Path) -> int | None:
    """Elements of the ``projector.*`` tensors in a safetensors file, or None.

    ``get_slice(...).get_shape()`` reads the header only, so a model of gigabytes costs nothing.
    A missing or unreadable file gives None: the table then shows the projector's name alone.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="numpy") as f:
            shapes = [f.get_slice(k).get_shape() for k in f.keys() if k.startswith("projector.")]
    except (OSError, SafetensorError):
        return None
    return sum(math.prod(shape) for shape in shapes) or None


def describe(exp_dir: Path) -> tuple[str, str, str]:
    """``(llm, speech encoder, projector)`` from ``west_config.json`` or the folder name."""
    config_path = find_config(exp_dir)
    if config_path is not None:
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ResultsError(f"{config_path}:{e.lineno}: invalid JSON: {e.msg}") from None
        llm = config.get("llm_model_name_or_path")
        encoder = config.get("whisper_model_name_or_path")
        projector = config.get("projector")
        params = config.get("projector_params") or count_projector_params(
            config_path.parent / WEIGHTS_NAME
        )
        return (
            Path(str(llm).rstrip("/")).name if llm else "-",
            encoder_name(str(encoder)) if encoder else "-",
            projector_name(str(projector), params) if projector else "-",
        )
    m = _FOLDER.match(exp_dir.resolve().name)
    if not m:
        return exp_dir.resolve().name, "-", "-"
    return m["llm"] or "-", encoder_name(m["size"]), m["projector"] or "-"


def load_experiment(exp_dir: str | Path) -> Experiment:
    """Read one experiment folder."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise ResultsError(f"{exp_dir}: not a directory; expected an experiment folder")
    llm, encoder, projector = describe(exp_dir)
    return Experiment(exp_dir, llm, encoder, projector, find_decodes(exp_dir))


def natural_key(text: str) -> list[int | str]:
    """Sort key that puts ``exp2`` before ``exp10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table with every column padded to its widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        + [line(r) for r in rows]
    )


def pick(
    exp: Experiment, testset: str, beam: int | None, tag: str = ""
) -> tuple[Decode | None, str]:
    """The decode of one test set at ``beam``, else its best beam (None: the best beam), and
    the mark of such a fallback (`` (beam N)``, else "")."""
    decode = exp.get(testset, beam, tag) if beam is not None else None
    if decode is not None:
        return decode, ""
    best = exp.best(testset, tag)
    return best, ("" if best is None else f" (beam {best.beam})")


def choose(exp: Experiment, testset: str, beam: int | None, tag: str = "") -> str:
    """The cell for one test set: at ``beam`` (None: the best beam); a fallback is marked."""
    decode, mark = pick(exp, testset, beam, tag)
    return "-" if decode is None else decode.cell + mark


def results_table(experiments: Sequence[Experiment], beam: int | None = 1) -> str:
    """One row per experiment and decoding settings, one column per test set, at ``beam``
    (None: best beam). The ``Decoding`` column (the tag) is there when a decode has one."""
    testsets = sorted(set().union(*(e.testsets() for e in experiments)), key=natural_key)
    tagged = any(tag for e in experiments for tag in e.tags())
    header = ["Exp", "LLM", "Speech Encoder", "Projector", *(["Decoding"] if tagged else [])]
    rows = [
        [str(i), e.llm, e.encoder, e.projector, *([tag or "-"] if tagged else [])]
        + [choose(e, t, beam, tag) for t in testsets]
        for i, e in enumerate(experiments, start=1)
        for tag in e.tags()
    ]
    return markdown_table(header + testsets, rows)


def beam_table(
    experiments: Sequence[Experiment],
    metric: str = "WER",
    metrics: Mapping[str, str] | None = None,
) -> str:
    """``| beam_size | 1 | 3 | ... |`` with one row per experiment, decoding settings and
    test set.

    Each row is labelled with its test set's metric: ``metrics[testset]`` if given, else
    ``metric`` (``west-score`` prints ``%WER`` for a CER too, so the wer file cannot tell),
    then the test set, the settings' tag and the experiment where there are several.
    """
    metrics = metrics or {}
    beams = sorted(set().union(*(e.beams() for e in experiments)))
    testsets = sorted(set().union(*(e.testsets() for e in experiments)), key=natural_key)
    rows = []
    for i, e in enumerate(experiments, start=1):
        for tag in e.tags():
            for t in testsets:
                if e.best(t, tag) is None:
                    continue
                label = metrics.get(t, metric)
                if len(testsets) > 1:
                    label += f" {t}"
                if tag:
                    label += f" {tag}"
                if len(experiments) > 1:
                    label += f" (Exp {i})"
                cells = [(d.cell if (d := e.get(t, b, tag)) else "-") for b in beams]
                rows.append([label, *cells])
    return markdown_table(["beam_size", *map(str, beams)], rows)


def biasing_table(
    experiments: Sequence[Experiment],
    beam: int | None = 1,
    metric: str = "WER",
    metrics: Mapping[str, str] | None = None,
) -> str | None:
    """WER, B-WER and U-WER side by side, one row per experiment, decoding settings and test
    set scored with a biasing list, at ``beam`` (as :func:`results_table` picks it); None
    when no decode has them. The WER is the raw one (the B-WER and U-WER are not filtered).

    Columns are named after the metric of those test sets (``CER``, ``B-CER``, ``U-CER``;
    ``metrics`` as in :func:`beam_table`), or ``WER/CER`` and so on when they differ.
    """
    metrics = metrics or {}
    tagged = any(tag for e in experiments for tag in e.tags())
    rows, names = [], set()
    for i, e in enumerate(experiments, start=1):
        for tag in e.tags():
            for t in sorted(e.testsets(), key=natural_key):
                decode, mark = pick(e, t, beam, tag)
                if decode is None or decode.biased is None or decode.unbiased is None:
                    continue
                names.add(metrics.get(t, metric))
                settings = [tag or "-"] if tagged else []
                rows.append(
                    [str(i), *settings, t, decode.raw + mark, decode.biased, decode.unbiased]
                )
    if not rows:
        return None
    name = "/".join(sorted(names))
    header = ["Exp", *(["Decoding"] if tagged else []), "Test set", name, f"B-{name}", f"U-{name}"]
    return markdown_table(header, rows)
