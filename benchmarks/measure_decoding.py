"""Decoding throughput, WER and FLOPs of the 2024 reference's search and of WeST's.

Utterance for utterance on the same chunks: the reference's (batch 1, 30 s padding,
transformers' `generate`) and WeST's (batched, variable length, left-padded, its own search:
the prompt's shared start read once per batch, one prefill per utterance shared by the beams,
finished utterances leave the batch), greedy and beam search, and WeST's at batch 1 to show
that batching does not change the hypotheses.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from flop_meter import FlopMeter
from model_patches import generated_tokens
from rss_monitor import RssMonitor
from workload import BenchConfig

from west.data.batching import collate
from west.data.dataset import SpeechDataset, Utterance
from west.models.speech_llm import SpeechLLM
from west.scoring.normalize import get_normalizer
from west.scoring.tokenize import get_tokenizer
from west.scoring.wer import score_utterances, summarize

logger = logging.getLogger("benchmarks")


def bench_decoding(
    model: SpeechLLM, utts: list[Utterance], cfg: BenchConfig, flops: FlopMeter, rss: RssMonitor
) -> dict:
    todo = sorted(utts, key=lambda u: -u.duration)
    n_mels = model.encoder.n_mels
    padded = SpeechDataset(todo, n_mels, pad_to_30s=True)
    plain = SpeechDataset(todo, n_mels)
    greedy, beam = 1, cfg.beams
    # (name, dataset, batch size, beams)
    paths = [
        ("reference_greedy", padded, 1, greedy),
        ("west_greedy", plain, cfg.decode_batch_size, greedy),
        ("west_greedy_batch1", plain, 1, greedy),
        (f"reference_beam{beam}", padded, 1, beam),
        (f"west_beam{beam}", plain, cfg.decode_batch_size, beam),
    ]
    if cfg.beam_batch1:
        paths.append((f"west_beam{beam}_batch1", plain, 1, beam))
    hyps: dict[str, dict[str, str]] = {p[0]: {} for p in paths}
    generated: dict[str, dict[str, int]] = {p[0]: {} for p in paths}
    seconds: dict[str, float] = defaultdict(float)

    def run(name, ds, bs, beams, idx):
        # The 2024 reference decoded with transformers' `generate`.
        engine = "hf" if name.startswith("reference") else "west"
        for start in range(0, len(idx), bs):
            part = idx[start : start + bs]
            t0 = time.perf_counter()
            batch = collate([ds[i] for i in part])
            with generated_tokens(model, cfg.max_new_tokens) as counts:
                texts = model.generate(
                    mel=batch["mel"],
                    mel_lens=batch["mel_lens"],
                    num_beams=beams,
                    max_new_tokens=cfg.max_new_tokens,
                    engine=engine,
                )
            seconds[name] += time.perf_counter() - t0
            for key, text, n in zip(batch["keys"], texts, counts, strict=True):
                hyps.setdefault(name, {})[key] = " ".join(text.split())
                generated.setdefault(name, {})[key] = n

    # Each engine on the shortest utterance, untimed.
    for warm in ("reference-warm-up", "west-warm-up"):
        for beams in (greedy, beam):
            run(warm, plain, 1, beams, [len(todo) - 1])
        del hyps[warm], generated[warm], seconds[warm]
    # Chunk by chunk, every path decodes the same utterances: load changes hit all alike.
    for start in range(0, len(todo), cfg.decode_batch_size):
        idx = list(range(start, min(start + cfg.decode_batch_size, len(todo))))
        for name, ds, bs, beams in paths:
            with rss.track(f"decode/{name}"), flops.track(f"decode/{name}"):
                before = seconds[name]
                run(name, ds, bs, beams, idx)
            logger.info("decode %s: %d utts in %.2f s", name, len(idx), seconds[name] - before)

    refs = {u.key: u.txt for u in todo}
    audio_s = sum(u.duration for u in todo)
    shared, own = len(model.prompt.prefix_ids), len(model.prompt.suffix_ids)
    normalize, words = get_normalizer("english"), get_tokenizer("word")
    out: dict = {}
    for name, _, bs, beams in paths:
        summary = summarize(score_utterances(refs, hyps[name], words, normalize))
        needed = flops.shared_needed(shared)
        for u in todo:
            n = generated[name][u.key]
            needed += flops.decode_needed(int(u.duration * 100), shared, own, n, beams)
        executed = flops.executed[f"decode/{name}"]
        out[name] = {
            "batch_size": bs,
            "num_beams": beams,
            "utterances": len(todo),
            "seconds": round(seconds[name], 3),
            "utt_per_s": len(todo) / seconds[name],
            "rtf": seconds[name] / audio_s,
            "wer": summary.wer,
            "flops_executed": executed,
            "flops_needed": needed,
            "flops_ratio": executed / needed if needed else None,
            "peak_rss_mb": rss.peak_mb(f"decode/{name}"),
            "hyps": hyps[name],
        }

    def same(a: str, b: str) -> dict:
        n = sum(hyps[a][k] == hyps[b][k] for k in refs)
        return {"identical": n, "of": len(refs)}

    out["identical"] = {
        "reference_vs_west_greedy": same("reference_greedy", "west_greedy"),
        "west_greedy_batched_vs_batch1": same("west_greedy", "west_greedy_batch1"),
    }
    if cfg.beam_batch1:
        out["identical"][f"west_beam{beam}_batched_vs_batch1"] = same(
            f"west_beam{beam}", f"west_beam{beam}_batch1"
        )
    return out
