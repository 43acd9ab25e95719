"""Small helpers shared by the entry points: `--config FILE.yaml` for west-train and west-recognize.

One yaml describes a run: its top-level keys are west-train's flags, and its `decode:`
mapping holds west-recognize's (e.g. `decode: {engine: hf, num_beams: [1, 5]}`). A
`base: other.yaml` key makes it a change of another yaml (see read_config).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from west.config import DecodeConf

DECODE_KEY = "decode"  # the yaml's mapping of west-recognize flags; west-train skips it
BASE_KEY = "base"  # the yaml this one changes (see read_config)


def _config_path(argv: list[str]) -> tuple[Path, int] | None:
    """(the yaml named by --config, its index in argv), or None without --config."""
    if "--config" not in argv:
        return None
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise ValueError("--config needs a yaml file")
    path = Path(argv[i + 1])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    return path, i


def _key_line(text: str, key: str) -> int:
    """The 1-based line of a top-level ``key:`` in yaml ``text`` (0 if not found)."""
    node = yaml.compose(text)
    for k, _ in getattr(node, "value", []):
        if getattr(k, "value", None) == key:
            return k.start_mark.line + 1
    return 0


def _load_mapping(path: Path) -> tuple[dict, str]:
    """The yaml's top-level mapping ({} for an empty file) and its text."""
    text = path.read_text(encoding="utf-8")
    try:
        conf = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ValueError(f"{where}: invalid yaml: {getattr(e, 'problem', e)}") from None
    if not isinstance(conf, dict):
        raise ValueError(f"{path}: expected a mapping of option: value")
    return conf, text


def read_config(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The yaml's top-level mapping ({} for an empty file), with its ``base:`` merged in.

    ``base: other.yaml`` (relative to this file) names a conf this one changes: the base's
    mapping (itself read this way, so chains work) comes first, this file's keys win, and
    the ``decode:`` mappings are merged key by key. A cycle, or a base that is not there,
    is an error naming the files and the line of ``base:``.
    """
    path = Path(path)
    chain = (*_chain, path.resolve())
    conf, text = _load_mapping(path)
    base = conf.pop(BASE_KEY, None)
    if base is None:
        return conf
    where = f"{path}:{_key_line(text, BASE_KEY)}"
    if not isinstance(base, str) or not base:
        raise ValueError(f"{where}: `{BASE_KEY}:` must name a yaml file, got {base!r}")
    base_path = path.parent / base
    if base_path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, base_path.resolve()))
        raise ValueError(f"{where}: `{BASE_KEY}: {base}` makes a cycle: {cycle}")
    if not base_path.is_file():
        raise FileNotFoundError(f"{where}: `{BASE_KEY}: {base}`: no such file {base_path}")
    merged = read_config(base_path, chain)
    base_decode, own_decode = merged.get(DECODE_KEY), conf.get(DECODE_KEY)
    merged.update(conf)
    if isinstance(base_decode, dict) and isinstance(own_decode, dict):
        merged[DECODE_KEY] = {**base_decode, **own_decode}
    return merged


def yaml_to_argv(argv: list[str]) -> list[str]:
    """Expand `--config FILE.yaml` into `--key value` flags placed before the other flags.

    Later flags win over the file's values, as HfArgumentParser keeps the last one. The
    `decode:` mapping is west-recognize's (see decode_argv); the keys of it that describe
    the model's decoding (DecodeConf's) become `--decode_conf`, saved with the model.
    """
    found = _config_path(argv)
    if found is None:
        return argv
    path, i = found
    conf = read_config(path)
    decode = conf.get(DECODE_KEY)
    if isinstance(decode, dict) and "decode_conf" not in conf:
        # The recipe's decoding travels with the model (ModelArguments.decode_conf).
        keys = {f.name for f in dataclasses.fields(DecodeConf)}
        conf["decode_conf"] = {k: v for k, v in decode.items() if k in keys}
    expanded: list[str] = []
    for key, value in conf.items():
        if value is None or key == DECODE_KEY:
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        expanded += [f"--{key}", str(value)]
    return expanded + argv[:i] + argv[i + 2 :]


def decode_argv(argv: list[str], known: set[str]) -> list[str]:
    """Expand `--config FILE.yaml` into west-recognize flags from its `decode:` mapping.

    They are placed before the other flags, so flags given on the command line win
    (argparse keeps the last). `key: [a, b]` gives `--key a b`; `key: true` gives `--key`
    (a switch) and false leaves it out. A key not in `known` (flag names) is an error
    naming the file; the rest of the yaml (west-train's flags) is ignored.
    """
    found = _config_path(argv)
    if found is None:
        return argv
    path, i = found
    section = read_config(path).get(DECODE_KEY) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: `{DECODE_KEY}:` must be a mapping of west-recognize flag: value")
    expanded: list[str] = []
    for key, value in section.items():
        if key not in known or key == "config":
            raise ValueError(
                f"{path}: {DECODE_KEY}.{key}: not a west-recognize flag; expected one of "
                f"{', '.join(sorted(known - {'config', 'help'}))}"
            )
        if value is None or value is False:
            continue
        expanded.append(f"--{key}")
        if value is not True:
            expanded += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return expanded + argv[:i] + argv[i + 2 :]
