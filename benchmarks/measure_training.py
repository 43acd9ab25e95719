"""Training throughput of three data paths, step by step on the same utterances.

A real step each (forward, backward, AdamW on what is trained), per path:
  reference    the 2024 reference's: every utterance padded to 30 s (1500 encoder frames,
               300 speech tokens), the LLM sequence right-padded to `model_max_length`
               (masked, no loss), random batches;
  west         real lengths, masks, length-grouped batches (`LengthGroupedSampler`);
  west_cached  as `west`, the frozen encoder's frames read from `west.data.cache`.
The paths take turns step by step, so a change in machine load hits all of them alike; each
step's time includes making its batch from the data (audio, log-mel, collate, or reading the
cache), since that is part of what the reference's data path costs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time

import torch
from flop_meter import FlopMeter
from model_patches import reference_padding
from rss_monitor import RssMonitor
from workload import BenchConfig

from west.data.batching import LengthGroupedSampler, collate
from west.data.cache import EncoderCache
from west.data.dataset import SpeechDataset, Utterance
from west.models.speech_llm import SpeechLLM

logger = logging.getLogger("benchmarks")


def _content(model: SpeechLLM, dataset: SpeechDataset) -> list[tuple[int, int]]:
    """(real mel frames, transcript tokens) of each utterance."""
    out = []
    for u in dataset.utts:
        frames = int(u.duration * 100)  # log-mel frames: one per 10 ms
        text = len(model.tokenizer(u.txt, add_special_tokens=False).input_ids)
        out.append((frames, text))
    return out


def bench_training(
    model: SpeechLLM,
    utts: list[Utterance],
    cfg: BenchConfig,
    cache: EncoderCache,
    flops: FlopMeter,
    rss: RssMonitor,
) -> dict:
    b, steps = cfg.batch_size, cfg.steps
    rng = random.Random(cfg.seed)
    pool = (utts * (steps * b // len(utts) + 1))[: steps * b] if utts else []
    rng.shuffle(pool)
    n_mels, tok = model.encoder.n_mels, model.tokenizer
    datasets = {
        "reference": SpeechDataset(pool, n_mels, tok, pad_to_30s=True),
        "west": SpeechDataset(pool, n_mels, tok),
        "west_cached": SpeechDataset(pool, n_mels, tok, cache=cache),
    }
    random_order = list(range(len(pool)))
    rng.shuffle(random_order)
    grouped = list(LengthGroupedSampler(datasets["west"].lengths, b, seed=cfg.seed))
    orders = {"reference": random_order, "west": grouped, "west_cached": grouped}
    batches = {k: [o[i * b : (i + 1) * b] for i in range(steps)] for k, o in orders.items()}

    prompt = len(model.prompt.prefix_ids) + len(model.prompt.suffix_ids)
    content = _content(model, datasets["west"])
    tokens_per_utt = [prompt + ((f + 1) // 2) // flops.ds_rate + t + 1 for f, t in content]
    needed_per_utt = [flops.train_needed(f, prompt, t) for f, t in content]

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    model.encoder.eval()

    def step(path: str, idx: list[int]) -> tuple[float, float, float]:
        ds = datasets[path]
        t0 = time.perf_counter()
        batch = collate([ds[i] for i in idx])
        t1 = time.perf_counter()
        padding = (
            reference_padding(model, cfg.model_max_length)
            if path == "reference"
            else contextlib.nullcontext()
        )
        with padding:
            loss = model(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, float(loss.detach())

    # The cached frames must give the uncached loss (fp16 storage: to rounding).
    with torch.no_grad():
        first = batches["west"][0]
        plain = model(**collate([datasets["west"][i] for i in first]))["loss"]
        cached = model(**collate([datasets["west_cached"][i] for i in first]))["loss"]
    loss_diff = abs(float(plain) - float(cached))

    for path in datasets:  # warm-up: allocator, kernels, tokenizer; not timed
        step(path, batches[path][0][:1])

    results = {
        k: {"data_s": 0.0, "step_s": 0.0, "samples": 0, "tokens": 0, "needed": 0.0, "losses": []}
        for k in datasets
    }
    for i in range(steps):
        for path in datasets:
            idx = batches[path][i]
            with rss.track(f"train/{path}"), flops.track(f"train/{path}"):
                data_s, step_s, loss = step(path, idx)
            r = results[path]
            r["data_s"] += data_s
            r["step_s"] += step_s
            r["samples"] += len(idx)
            r["tokens"] += sum(tokens_per_utt[j] for j in idx)
            r["needed"] += sum(needed_per_utt[j] for j in idx)
            r["losses"].append(round(loss, 4))
            logger.info("train %s step %d: batch %.2f s, step %.2f s", path, i + 1, data_s, step_s)
    model.eval()

    out = {}
    for path, r in results.items():
        total = r["data_s"] + r["step_s"]
        executed = flops.executed[f"train/{path}"]
        out[path] = {
            "steps": steps,
            "batch_size": b,
            "samples": r["samples"],
            "data_s": round(r["data_s"], 3),
            "step_s": round(r["step_s"], 3),
            "samples_per_s": r["samples"] / total,
            "tokens_per_s": r["tokens"] / total,
            "step_only_samples_per_s": r["samples"] / r["step_s"],
            "content_tokens": r["tokens"],
            "llm_positions_executed": flops.llm_positions[f"train/{path}"],
            "flops_executed": executed,
            "flops_needed": r["needed"],
            "flops_ratio": executed / r["needed"] if r["needed"] else None,
            "peak_rss_mb": rss.peak_mb(f"train/{path}"),
            "losses": r["losses"],
        }
    out["cached_loss_abs_diff"] = loss_diff
    return out
