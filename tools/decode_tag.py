#!/usr/bin/env python3
"""The tag of a decode folder: every west-recognize setting that changes the text, in a name.

    tools/decode_tag.py [--model_name NAME] -- WEST-RECOGNIZE FLAGS...

prints e.g. ``final_west_ctc0.5_float32_tok64``: the model (``final``, ``ckpt-N`` for a
``checkpoint-N`` folder, else the folder's name), the engine, the CTC weight, the dtype, the
token limit, then every other setting that changes the text (``max_speech_seconds30``,
``cut_long_audio``, ``llm-<name>``, ...), in a fixed order. tools/decode.sh names each folder
``decode_<set>_beam<N>_<tag>``, so a decode with other settings never reuses another's
``.done``. The flags are read as west-recognize reads them (the ``decode:`` mapping of
``--config`` first, the flags given win); ``--data_path`` and ``--result_path`` may be left out.
Settings that leave the text unchanged (batch size, device, workers, log level) are not in it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import west  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Named by the fixed fields of the tag, or not changing the text (see the module docstring).
FIXED = {"engine", "ctc_weight", "dtype", "max_new_tokens"}
IGNORED = {
    "config", "model_dir", "data_path", "result_path", "num_beams",
    "batch_size", "device", "num_workers", "log_level", "help",
}  # fmt: skip


def model_name(model_dir: str) -> str:
    """``exp/run/checkpoint-600`` -> ``ckpt-600``; another folder -> its name."""
    name = Path(model_dir.rstrip("/")).name
    m = re.fullmatch(r"checkpoint-(\d+)", name)
    return f"ckpt-{m[1]}" if m else name


def clean(text: str) -> str:
    """A value as it may appear in a folder name: a path's last part, no separators."""
    text = Path(text.rstrip("/")).name if "/" in text else text
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def number(value: float) -> str:
    """0.5 -> ``0.5``, 0.0 -> ``0``, 30.0 -> ``30``: one spelling for one value."""
    return f"{value:g}"


def tag(args: argparse.Namespace, defaults: argparse.Namespace, model: str) -> str:
    """The settings of ``args`` as ``<model>_<engine>_ctc<w>_<dtype>_tok<n>[_<other>...]``.

    ``defaults`` holds west-recognize's defaults: other settings are named only when they
    differ from them, so a new west-recognize flag does not rename existing decodes.
    """
    parts = [
        model,
        args.engine,
        f"ctc{number(args.ctc_weight)}",
        args.dtype,
        f"tok{args.max_new_tokens}",
    ]
    for key in sorted(vars(args)):
        value = getattr(args, key)
        if key in FIXED | IGNORED or value == getattr(defaults, key, None):
            continue
        if value is True:
            parts.append(key)
        elif isinstance(value, float):
            parts.append(f"{key}{number(value)}")
        else:
            parts.append(f"{key}-{clean(str(value))}")
    return "_".join(parts)


def resolve_model_defaults(settings: argparse.Namespace) -> None:
    """Fill the decoding settings no flag gave with the model's decode_conf, as
    west-recognize does (west.bin.recognize.decoding), so the tag names what is decoded."""
    from west.bin.recognize import decoding
    from west.config import DecodeConf, ModelArguments, config_path

    if settings.model_dir and config_path(settings.model_dir):
        config = ModelArguments.load(settings.model_dir)
        conf, has_ctc = config.decode, config.ctc.weight > 0
    else:
        conf, has_ctc = DecodeConf(), False
    d = decoding(settings, conf, has_ctc)
    settings.ctc_weight, settings.engine, settings.max_new_tokens = (
        d.ctc_weight,
        d.engine,
        d.max_new_tokens,
    )


def main(argv: list[str] | None = None) -> int:
    from west.bin.recognize import get_parser
    from west.utils import decode_argv

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model_name",
        help="the model's name in the tag [default: from --model_dir among the flags]",
    )
    p.add_argument("flags", nargs=argparse.REMAINDER, help="west-recognize flags, after --")
    args = p.parse_args(argv)
    flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
    recognize = get_parser()
    placeholders = ["--data_path", "-", "--result_path", "-"]
    try:
        flags = decode_argv(flags, {a.dest for a in recognize._actions})
    except (ValueError, FileNotFoundError) as e:
        print(f"decode_tag.py: error: {e}", file=sys.stderr)
        return 1
    settings = recognize.parse_args(placeholders + flags)
    defaults = recognize.parse_args(placeholders)
    resolve_model_defaults(settings)
    model = args.model_name or (model_name(settings.model_dir) if settings.model_dir else "model")
    print(tag(settings, defaults, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
