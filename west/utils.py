"""Small helpers shared by the entry points."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def yaml_to_argv(argv: list[str]) -> list[str]:
    """Expand `--config FILE.yaml` into `--key value` flags placed before the other flags.

    Later flags win over the file's values, as HfArgumentParser keeps the last one.
    """
    if "--config" not in argv:
        return argv
    i = argv.index("--config")
    if i + 1 >= len(argv):
        raise ValueError("--config needs a yaml file")
    path = Path(argv[i + 1])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    conf = yaml.safe_load(path.read_text()) or {}
    if not isinstance(conf, dict):
        raise ValueError(f"{path}: expected a mapping of option: value")
    expanded: list[str] = []
    for key, value in conf.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        expanded += [f"--{key}", str(value)]
    return expanded + argv[:i] + argv[i + 2 :]
