"""Scoring: Kaldi-style WER/CER, text normalisation, hallucination filter, results tables.

Works on plain Kaldi ``text`` files and knows nothing of models. Modules: ``textio`` (read),
``normalize``, ``english`` (Whisper's English normaliser without torch, made fast) and
``tokenize`` (what is compared), ``align`` (Levenshtein with backtrace),
``wer`` (per-utterance scores and totals), ``report`` (Kaldi's output lines), ``details``
(per-utterance alignments), ``hallucination`` (its definition), ``biasing`` (B-WER and U-WER
against biasing lists) and ``table`` (README tables from decode folders).
"""
