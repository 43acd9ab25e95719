#!/usr/bin/env python3
"""Hotwords measured: WER, B-WER and U-WER with no list, the true words alone, and lists of
N distractors, for the search route, the prompt route and both; and the decoding time.

    python benchmarks/bench_hotwords.py --model_dir examples/mini/exp/ctc_compress \\
        --prompt_model_dir examples/mini/exp/ctc_compress_context \\
        --data examples/mini/data/names/data.jsonl --train_text examples/mini/data/train/text
    python benchmarks/bench_hotwords.py --quick     # tiny random models, for CI

Each utterance's list is built as the LibriSpeech biasing benchmark builds it
(west.data.rare_words): its own rare words (outside the --num_common most frequent words of
the training transcripts) plus N distractors, rare words of the training text. "true" is
N = 0. Every setting decodes the same utterances with west.decode.recognize (west-recognize's
path: per-utterance "context" lists) and is scored with west-score's B-WER / U-WER
(west.scoring.biasing) against the list it decoded with; the decode without lists is
scored against each list ("none (N=100)": B-WER and U-WER as they are without biasing, an
inserted word counting to B-WER when it is in that list).

--model_dir decodes with the search route (its hotword bonus; --bonus to change it); a
--prompt_model_dir (trained with context_conf) adds the prompt route and both. The time of
each setting is measured in this one run: the ratio of N = 1000 to none is printed. Name
the CPU (`lscpu`) beside the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from west.data.dataset import read_data, validate  # noqa: E402
from west.data.rare_words import biasing_list, build_vocabulary  # noqa: E402
from west.decode import recognize  # noqa: E402
from west.loader import load_model  # noqa: E402
from west.scoring.biasing import BiasingLists, score_biasing  # noqa: E402
from west.scoring.normalize import get_normalizer  # noqa: E402
from west.scoring.textio import read_kaldi_text  # noqa: E402
from west.scoring.tokenize import get_tokenizer  # noqa: E402
from west.scoring.wer import score_utterances, summarize  # noqa: E402


@dataclass
class Row:
    model: str
    route: str
    lists: str
    wer: float
    b_wer: float
    u_wer: float
    b_words: int
    seconds: float
    per_utt: float


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model_dir", help="a trained model: the search route")
    p.add_argument("--prompt_model_dir", help="a model trained with context_conf: + prompt, both")
    p.add_argument("--data", help="data list (jsonl) with transcripts")
    p.add_argument("--train_text", help="Kaldi text of the training transcripts (rare words)")
    p.add_argument("--distractors", type=int, nargs="+", default=[100, 1000])
    p.add_argument(
        "--prompt_distractors",
        type=int,
        default=100,
        help="the prompt route (and both) only for lists of at most this many distractors: "
        "1,000 entries are ~4,000 prompt tokens, past the mini model's context_conf max_tokens",
    )
    p.add_argument("--num_common", type=int, default=5000)
    p.add_argument("--bonus", type=float, help="hotword bonus [default: the model's]")

    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--max_utts", type=int, help="the first N utterances only")
    p.add_argument("--normalizer", default="english")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", help="also write the table (markdown) here")
    p.add_argument("--quick", action="store_true", help="tiny random models on synthetic speech")
    return p


def lists_for(utts, vocab, sizes: list[int], seed: int) -> dict[str, dict[str, list[str]]]:
    """{"none" | "true" | "N=100" ...: {key: list}}."""
    out: dict[str, dict[str, list[str]]] = {"none": {u.key: [] for u in utts}}
    for n in [0, *sizes]:
        name = "true" if n == 0 else f"N={n}"
        out[name] = {u.key: biasing_list(u.key, u.txt.split(), vocab, n, seed) for u in utts}
    return out


def decode(model, utts, lists: dict[str, list[str]], route: str, bonus, args, tmp: Path):
    """Texts of `utts` decoded with these lists and route; seconds it took."""
    todo = [replace(u, context=lists[u.key]) for u in utts]
    out = tmp / f"hyp_{time.monotonic_ns()}"
    start = time.perf_counter()
    recognize(
        model,
        todo,
        out,
        args.batch_size,
        model.config.decode.num_beams,
        model.config.decode.max_new_tokens,
        ctc_weight=model.config.decode.resolve(model.ctc is not None).ctc_weight,
        max_tokens_per_second=model.config.decode.max_tokens_per_second,
        hotword_bonus=bonus,
        context_route=route,
    )
    return read_kaldi_text(out), time.perf_counter() - start


def score(refs, hyps, lists: dict[str, list[str]], normalizer: str):
    tokenize, normalize = get_tokenizer("word"), get_normalizer(normalizer)
    scores = score_utterances(refs, hyps, tokenize, normalize)
    b, u, _ = score_biasing(scores, BiasingLists("bench", dict(lists)), tokenize, normalize)
    rate = lambda c: 100.0 * c.errors / c.ref_len if c.ref_len else float("nan")  # noqa: E731
    return summarize(scores).wer, rate(b), rate(u), b.ref_len


def run(args) -> list[Row]:
    torch.set_num_threads(args.threads)
    utts = validate(read_data(args.data), need_text=True)[: args.max_utts]
    train = read_kaldi_text(args.train_text).values()
    vocab = build_vocabulary(train, num_common=args.num_common)
    all_lists = lists_for(utts, vocab, args.distractors, args.seed)
    refs = {u.key: u.txt for u in utts}
    models = [(args.model_dir, ["search"])]
    if args.prompt_model_dir:
        models.append((args.prompt_model_dir, ["prompt", "search", "both"]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_dir, routes in models:
            model = load_model(model_dir)
            bonus = model.config.decode.hotword_bonus if args.bonus is None else args.bonus
            label = f"{Path(model_dir).name}"
            for lists_name, lists in all_lists.items():
                n = 0 if lists_name in ("none", "true") else int(lists_name[2:])
                todo = routes if n <= args.prompt_distractors else ["search"]
                for route in todo if lists_name != "none" else ["none"]:
                    hyps, seconds = decode(
                        model, utts, lists, "search" if route == "none" else route, bonus, args,
                        Path(tmp),
                    )  # fmt: skip
                    # No lists: scored against each list, for the rows that decoded with it.
                    scored = [(lists_name, lists)] if lists_name != "none" else [
                        (f"none ({name})", other) for name, other in all_lists.items()
                        if name != "none"
                    ]  # fmt: skip
                    for name, with_list in scored:
                        wer, b, u, n_b = score(refs, hyps, with_list, args.normalizer)
                        per_utt = seconds / len(utts)
                        row = Row(label, route, name, wer, b, u, n_b, seconds, per_utt)
                        print(json.dumps(row.__dict__), flush=True)
                        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| model | route | list | WER | B-WER | U-WER | s/utt |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.route} | {r.lists} | {r.wer:.2f} | {r.b_wer:.2f} | "
            f"{r.u_wer:.2f} | {r.per_utt:.3f} |"
        )
    return "\n".join(lines)


def quick_setup(tmp: Path) -> list[str]:
    """Tiny random models (a search-route one and a context_conf one) and a few synthetic
    utterances with a name in each: the flags a quick run passes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples/mini/local"))
    from conftest import synthesize
    from ctc_models import write_ctc_model_dir
    from gguf_llm import default_smollm2_gguf, load_gguf_tokenizer
    from tiny_models import write_tiny_llm, write_tiny_whisper

    from west.config import ModelArguments

    tok = load_gguf_tokenizer(default_smollm2_gguf())
    llm = write_tiny_llm(tok, tmp / "llm")
    args = ModelArguments(
        llm_model_name_or_path=str(llm),
        whisper_model_name_or_path=str(write_tiny_whisper(tmp / "whisper.pt")),
        projector_hidden_size=32,
    )
    sentences = ["we flew to lisbon in may", "ask okafor about the plan", "the river was high"]
    lines = []
    for i, s in enumerate(sentences):
        wav = synthesize(s, tmp / f"u{i}.wav")
        lines.append(json.dumps({"key": f"u{i}", "wav": str(wav), "txt": s}))
    (tmp / "data.jsonl").write_text("\n".join(lines) + "\n")
    train = ["the plan was high in may", "we flew to the river", "ask about it"]
    (tmp / "train").write_text("".join(f"t{i} {t}\n" for i, t in enumerate(train)))
    write_ctc_model_dir(args, tmp / "search", train)
    prompt_args = replace(args, context_conf={"prob": 0.5})
    write_ctc_model_dir(prompt_args, tmp / "prompt", train)
    return [
        "--model_dir", str(tmp / "search"), "--prompt_model_dir", str(tmp / "prompt"),
        "--data", str(tmp / "data.jsonl"), "--train_text", str(tmp / "train"),
        "--distractors", "5", "--num_common", "5", "--batch_size", "2",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = get_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            args = get_parser().parse_args(quick_setup(Path(tmp)) + argv)
            args.quick = True
        if not (args.model_dir and args.data and args.train_text):
            get_parser().error("give --model_dir, --data and --train_text (or --quick)")
        rows = run(args)
    text = table(rows)
    print(text)
    times = {(r.model, r.route, r.lists): r.seconds for r in rows}
    big = f"N={max(args.distractors)}" if args.distractors else "true"
    for (model, route, lists), seconds in times.items():
        if lists == big and (model, "none", f"none ({big})") in times:
            base = times[(model, "none", f"none ({big})")]
            print(f"decoding time, {model} {route} {big} / none: {seconds / base:.2f}")
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
