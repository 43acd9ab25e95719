#!/usr/bin/env python3
"""Kaldi-style WER/CER: ``tools/compute_wer.py [options] REF HYP`` (same as ``west-score``).

Runs from a checkout too: without an installed ``west`` it uses the one beside this script
(scoring needs only the standard library, plus openai-whisper's files for English).
"""

import sys
from pathlib import Path

try:
    import west  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from west.bin.score import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
