#!/usr/bin/env python3
"""Kaldi-style WER/CER: ``tools/compute_wer.py [options] REF HYP`` (same as ``west-score``)."""

import sys

from west.bin.score import main

if __name__ == "__main__":
    sys.exit(main())
