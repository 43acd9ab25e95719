"""Speed of WeST's data path against the seed's, on the same models, data and machine.

Training (a real step: forward, backward, AdamW on the projector), per path:
  seed        every utterance padded to 30 s (1500 encoder frames, 300 speech tokens), the LLM
              sequence right-padded to `model_max_length` (masked, no loss), random batches;
  west        real lengths, masks, length-grouped batches (`LengthGroupedSampler`);
  west_cached as `west`, the frozen encoder's frames read from `west.data.cache`.
The paths take turns step by step over the same utterances, so a change in machine load hits
all of them alike; each step's time includes making its batch from the data (audio, log-mel,
collate, or reading the cache), since that is part of what the seed's data path costs.

Decoding, per path, utterance for utterance on the same chunks: the seed's (batch 1, 30 s
padding, transformers' `generate`) and WeST's (batched, variable length, left-padded, its own
search: the prompt's shared start read once per batch, one prefill per utterance shared by the
beams, finished utterances leave the batch), greedy and beam 5, and WeST's at batch 1 to show
that batching does not change the hypotheses.

FLOPs are counted from the shapes each module actually receives (hooks on the encoder,
projector, LLM decoder and output layer): matmuls as 2 x weights x positions, attention as
4 x queries x keys x width per layer (masked positions included, as a dense kernel computes
them), backward as one more forward for the frozen LLM (input gradients only) and two more for
the projector. The floor ("needed") is the same formulas on the real content only: encoder
on the real frames, LLM on prompt + real speech tokens + transcript, output layer on the
positions that are scored or generated, beams sharing one prefill; in decoding, the prompt's
shared start once for the whole run and the tokens each path generated (counted from the ids).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import platform
import random
import resource
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

from west.config import ModelArguments
from west.data.batching import LengthGroupedSampler, collate
from west.data.cache import EncoderCache, fill_cache
from west.data.dataset import SpeechDataset, Utterance, read_data, validate
from west.models.build import build_model, count_params
from west.models.speech_llm import IGNORE_ID, SpeechLLM
from west.scoring.normalize import get_normalizer
from west.scoring.tokenize import get_tokenizer
from west.scoring.wer import score_utterances, summarize

logger = logging.getLogger(__name__)

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "speech recognition with a large language model",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine",
    "all that glitters is not gold",
    "the early bird catches the worm",
    "we measured every step on the same machine",
    "a cold wind blew across the empty harbour",
    "please call stella and ask her to bring these things with her from the store",
    "the museum opens at nine and closes at five on weekdays",
    "it rained all night and the river rose above its banks",
    "he read the letter twice before he put it back in the drawer",
    "six spoons of fresh snow peas and five thick slabs of blue cheese",
    "the children ran down the hill toward the old stone bridge",
    "our train leaves at a quarter past eight from platform two",
    "she plays the violin in a small orchestra every sunday",
]


@dataclass
class BenchConfig:
    whisper: str | None = None  # openai-whisper .pt (or HF folder); None: tiny random models
    llm: str | None = None
    checkpoint: str | None = None  # trained WeST checkpoint (projector/LoRA), for real WERs
    data: str | None = None  # jsonl; None: espeak-ng utterances are synthesised
    workdir: str | None = None
    num_utts: int = 12  # training uses them all (steps x batch_size, repeated if fewer)
    decode_utts: int = 8  # decoding uses the first ones: the seed's beam search is slow
    steps: int = 3
    batch_size: int = 4
    decode_batch_size: int = 8
    beams: int = 5
    max_new_tokens: int = 32
    model_max_length: int = 512
    projector_hidden_size: int = 2048
    seed: int = 0
    beam_batch1: bool = False  # also decode beam search at batch 1 (hypothesis check)
    threads: int = 1  # torch CPU threads; 0 keeps torch's default (all cores)
    tiny: bool = field(init=False, default=False)


# ---- machine-level measurements -------------------------------------------------------------


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS, so one path's peak RSS is not the last one's."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssMonitor:
    """Samples the resident set size every few ms and keeps the peak per label."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.label: str | None = None
        self.peaks: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        if self.label is not None:
            self.peaks[self.label] = max(self.peaks[self.label], _rss_bytes())

    @contextlib.contextmanager
    def track(self, label: str):
        _malloc_trim()
        self.label = label
        self.sample()
        try:
            yield
        finally:
            self.sample()
            self.label = None

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, label: str) -> float:
        return round(self.peaks.get(label, 0) / 2**20, 1)


class FlopMeter:
    """FLOPs executed, per label, from the shapes the model's parts receive (see module doc)."""

    def __init__(self, model: SpeechLLM):
        self.model = model
        enc = model.encoder
        self.n_mels, self.enc_dim = enc.n_mels, enc.output_dim
        self.enc_layers = len(enc.blocks)  # frozen blocks
        self.top_layers = len(model.encoder_top.blocks) if model.encoder_top is not None else 0
        self.proj_weights = sum(p.numel() for p in model.projector.parameters() if p.dim() > 1)
        base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
        self.decoder = base.get_decoder()
        self.lm_head = base.get_output_embeddings()
        cfg = base.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.attn_width = cfg.num_attention_heads * head_dim
        self.llm_layers = cfg.num_hidden_layers
        self.dec_weights = sum(
            m.weight.numel() for m in self.decoder.modules() if isinstance(m, torch.nn.Linear)
        )
        self.head_weights = self.lm_head.weight.numel()
        self.ds_rate = model.config.encoder_projector_ds_rate
        self.label: str | None = None
        self.executed: dict[str, float] = defaultdict(float)
        self.llm_positions: dict[str, int] = defaultdict(int)
        self._handles: list = []

    # analytic costs (forward) ------------------------------------------------------------
    def encoder(self, mel_frames: int, top: bool = True) -> float:
        """Forward FLOPs of the frozen encoder (and of its trained top blocks if `top`)."""
        t = (mel_frames + 1) // 2
        d = self.enc_dim
        convs = 2 * 3 * mel_frames * self.n_mels * d + 2 * 3 * t * d * d
        layers = self.enc_layers + (self.top_layers if top else 0)
        return float(convs + layers * self.encoder_block(t))

    def encoder_block(self, t: int) -> float:
        d = self.enc_dim
        return float(2 * 12 * d * d * t + 4 * t * t * d)

    def projector(self, tokens: int) -> float:
        return 2.0 * self.proj_weights * tokens

    def llm(self, new: int, context: int) -> float:
        """Decoder layers for `new` positions attending to `context` keys (no output layer)."""
        return (
            2.0 * self.dec_weights * new + 4.0 * new * context * self.attn_width * self.llm_layers
        )

    def head(self, rows: int) -> float:
        return 2.0 * self.head_weights * rows

    # hooks --------------------------------------------------------------------------------
    def _add(self, flops: float) -> None:
        if self.label is not None:
            self.executed[self.label] += flops

    def _on_encoder(self, module, args, kwargs):
        mel = args[0] if args else kwargs["mel"]
        self._add(mel.shape[0] * self.encoder(mel.shape[-1], top=False))

    def _on_encoder_top(self, module, args, kwargs):
        b, t = args[0].shape[:2]
        grad = torch.is_grad_enabled()
        self._add((3.0 if grad else 1.0) * b * self.top_layers * self.encoder_block(t))

    def _on_projector(self, module, args, output):
        b, n = output[0].shape[:2]
        grad = torch.is_grad_enabled()
        self._add((3.0 if grad else 1.0) * b * self.projector(n))

    def _on_decoder(self, module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        b, new = x.shape[:2]
        # transformers 5 hands the KV cache over as `cache` (`past_key_values` before).
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = cache.get_seq_length() if cache is not None else 0
        matmul = 2.0 * self.dec_weights * new
        attn = 4.0 * new * (past + new) * self.attn_width * self.llm_layers
        if torch.is_grad_enabled():  # backward: input gradients only (frozen weights)
            matmul, attn = 2 * matmul, 3 * attn
        self._add(b * (matmul + attn))
        if self.label is not None:
            self.llm_positions[self.label] += b * new

    def _on_head(self, module, args, output):
        rows = args[0].numel() // args[0].shape[-1]
        self._add((2.0 if torch.is_grad_enabled() else 1.0) * self.head(rows))

    def __enter__(self) -> FlopMeter:
        m = self.model
        self._handles = [
            m.encoder.register_forward_pre_hook(self._on_encoder, with_kwargs=True),
            m.projector.register_forward_hook(self._on_projector),
            self.decoder.register_forward_pre_hook(self._on_decoder, with_kwargs=True),
            self.lm_head.register_forward_hook(self._on_head),
        ]
        if m.encoder_top is not None:
            hook = m.encoder_top.register_forward_pre_hook(self._on_encoder_top, with_kwargs=True)
            self._handles.append(hook)
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()

    @contextlib.contextmanager
    def track(self, label: str):
        self.label = label
        try:
            yield
        finally:
            self.label = None

    # floors -----------------------------------------------------------------------------
    def train_needed(self, mel_frames: int, prompt: int, text: int) -> float:
        n = ((mel_frames + 1) // 2) // self.ds_rate
        length = prompt + n + text + 1
        return (
            self.encoder(mel_frames)
            + 2 * self.top_layers * self.encoder_block((mel_frames + 1) // 2)  # its backward
            + 3 * self.projector(n)
            + 2 * 2.0 * self.dec_weights * length
            + 3 * 4.0 * length * length * self.attn_width * self.llm_layers
            + 2 * self.head(text + 1)
        )

    def decode_needed(
        self, mel_frames: int, shared: int, own: int, generated: int, beams: int
    ) -> float:
        """One utterance after the `shared` prompt start (read once for all, `shared_needed`):
        its `own` prompt tokens and speech, `generated` tokens (the first from the prefill),
        `beams` hypotheses."""
        n = ((mel_frames + 1) // 2) // self.ds_rate
        context = shared + own + n
        steps = sum(self.llm(1, context + g + 1) + self.head(1) for g in range(generated - 1))
        return (
            self.encoder(mel_frames)
            + self.projector(n)
            + self.llm(own + n, context)
            + self.head(1)
            + beams * steps
        )

    def shared_needed(self, shared: int) -> float:
        """The prompt start every utterance shares: read once for a whole decoding run."""
        return self.llm(shared, shared)


# ---- models and data ----------------------------------------------------------------------


def build_tiny_models(out: Path) -> tuple[str, str]:
    """Random Whisper-shaped encoder and 2-layer Qwen2 with SmolLM2's tokenizer (reused if present)."""
    from west.models.tiny import write_tiny_llm, write_tiny_whisper

    whisper, llm = out / "tiny_whisper.pt", out / "tiny_llm"
    if not whisper.is_file():
        write_tiny_whisper(whisper)
    if not (llm / "config.json").is_file():
        from transformers import AutoTokenizer

        from west.models.gguf_llm import default_smollm2_gguf

        gguf = default_smollm2_gguf()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        write_tiny_llm(tok, llm, "qwen2")
    return str(whisper), str(llm)


def synthesize_data(out: Path, n: int, seed: int = 0) -> Path:
    """`n` espeak-ng utterances of 1 to 3 sentences (about 2 to 12 s) and their data.jsonl."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng); give --data")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        text = " ".join(rng.sample(SENTENCES, 1 + i % 3))
        wav = out / f"bench{i:04d}.wav"
        if not wav.is_file():
            speed = str(rng.choice([130, 150, 170]))
            cmd = ["espeak-ng", "-v", "en-us", "-s", speed, "-w", str(wav), text]
            subprocess.run(cmd, check=True, capture_output=True)
        lines.append(json.dumps({"key": f"bench{i:04d}", "wav": str(wav), "txt": text}))
    path = out / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def load_bench_model(cfg: BenchConfig) -> SpeechLLM:
    overrides = {
        "whisper_model_name_or_path": cfg.whisper,
        "llm_model_name_or_path": cfg.llm,
        "freeze_encoder": True,
        "pad_to_30s": False,  # the datasets decide the padding
    }
    if cfg.checkpoint:
        config = ModelArguments.load(cfg.checkpoint)
        overrides["projector_model_path"] = str(Path(cfg.checkpoint) / "model.safetensors")
        overrides = {k: v for k, v in overrides.items() if v is not None}
    else:
        overrides["projector_hidden_size"] = cfg.projector_hidden_size
        config = ModelArguments()
    torch.manual_seed(cfg.seed)
    return build_model(dataclasses.replace(config, **overrides)).eval()


# ---- training ---------------------------------------------------------------------------------


@contextlib.contextmanager
def seed_sequence_padding(model: SpeechLLM, max_length: int):
    """The seed's LLM input: every training sequence right-padded to `max_length` (masked)."""
    original = model._assemble

    def padded(speech, speech_lens, text_ids, left_pad, **kwargs):
        inputs, mask, labels = original(speech, speech_lens, text_ids, left_pad, **kwargs)
        extra = max_length - inputs.shape[1]
        if labels is not None and extra > 0:
            inputs = F.pad(inputs, (0, 0, 0, extra))
            mask = F.pad(mask, (0, extra))
            labels = F.pad(labels, (0, extra), value=IGNORE_ID)
        return inputs, mask, labels

    model._assemble = padded
    try:
        yield
    finally:
        del model._assemble


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
        "seed": SpeechDataset(pool, n_mels, tok, pad_to_30s=True),
        "west": SpeechDataset(pool, n_mels, tok),
        "west_cached": SpeechDataset(pool, n_mels, tok, cache=cache),
    }
    random_order = list(range(len(pool)))
    rng.shuffle(random_order)
    grouped = list(LengthGroupedSampler(datasets["west"].lengths, b, seed=cfg.seed))
    orders = {"seed": random_order, "west": grouped, "west_cached": grouped}
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
            seed_sequence_padding(model, cfg.model_max_length)
            if path == "seed"
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


# ---- decoding ---------------------------------------------------------------------------------


@contextlib.contextmanager
def generated_tokens(model: SpeechLLM, max_new_tokens: int):
    """Yields a list that gets, per decoded utterance, the tokens it generated (end token
    included if it came within the cap), read from the ids `generate` turns into text (the
    text, re-tokenised, loses special and whitespace tokens)."""
    counts: list[int] = []
    tokenizer = model.tokenizer
    stops = set(model.stop_ids)

    def batch_decode(ids, *args, **kwargs):
        for row in ids:
            row = [int(t) for t in row]
            cut = next((i for i, t in enumerate(row) if t in stops), len(row))
            counts.append(min(cut + 1, max_new_tokens))
        return type(tokenizer).batch_decode(tokenizer, ids, *args, **kwargs)

    tokenizer.batch_decode = batch_decode
    try:
        yield counts
    finally:
        del tokenizer.batch_decode


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
        ("seed_greedy", padded, 1, greedy),
        ("west_greedy", plain, cfg.decode_batch_size, greedy),
        ("west_greedy_batch1", plain, 1, greedy),
        (f"seed_beam{beam}", padded, 1, beam),
        (f"west_beam{beam}", plain, cfg.decode_batch_size, beam),
    ]
    if cfg.beam_batch1:
        paths.append((f"west_beam{beam}_batch1", plain, 1, beam))
    hyps: dict[str, dict[str, str]] = {p[0]: {} for p in paths}
    generated: dict[str, dict[str, int]] = {p[0]: {} for p in paths}
    seconds: dict[str, float] = defaultdict(float)

    def run(name, ds, bs, beams, idx):
        engine = "hf" if name.startswith("seed") else "west"  # the seed decoded with HF generate
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

    for warm in ("seed-warm-up", "west-warm-up"):  # each engine on the shortest utterance, untimed
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
        "seed_vs_west_greedy": same("seed_greedy", "west_greedy"),
        "west_greedy_batched_vs_batch1": same("west_greedy", "west_greedy_batch1"),
    }
    if cfg.beam_batch1:
        out["identical"][f"west_beam{beam}_batched_vs_batch1"] = same(
            f"west_beam{beam}", f"west_beam{beam}_batch1"
        )
    return out


# ---- the whole run ------------------------------------------------------------------------------


def default_workdir() -> Path:
    """Tiny models, synthesised speech and the cache live here between runs."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "west" / "benchmark"


def run_benchmark(cfg: BenchConfig) -> dict:
    load_start = os.getloadavg()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    workdir = Path(cfg.workdir or default_workdir())
    workdir.mkdir(parents=True, exist_ok=True)
    if cfg.whisper is None or cfg.llm is None:
        cfg.tiny = True
        cfg.whisper, cfg.llm = build_tiny_models(workdir / "tiny_models")
    data = cfg.data or str(synthesize_data(workdir / "speech", cfg.num_utts, cfg.seed))
    model = load_bench_model(cfg)
    utts = validate(read_data(data), tokenizer=model.tokenizer)
    if len(utts) > cfg.num_utts:  # a corpus: a seeded random sample, not its first lines
        utts = random.Random(cfg.seed).sample(utts, cfg.num_utts)
    if not utts:
        raise ValueError(f"{data}: no usable utterances")
    logger.info("%d utterances, %.1f s of audio", len(utts), sum(u.duration for u in utts))

    cache = EncoderCache.for_encoder(workdir / "encoder_cache", model.encoder, pad_to_30s=False)
    for u in utts:  # a fresh first pass each run: its cost is one of the figures
        cache.path(u).unlink(missing_ok=True)
    t0 = time.perf_counter()
    fill_cache(cache, model.encoder, utts, pad_to_30s=False, batch_size=cfg.decode_batch_size)
    cache_s = time.perf_counter() - t0
    cache_bytes = sum(cache.path(u).stat().st_size for u in utts)
    logger.info("encoder cache: %d utterances in %.2f s", len(utts), cache_s)

    with RssMonitor() as rss, FlopMeter(model) as flops:
        train = bench_training(model, utts, cfg, cache, flops, rss)
        decode = bench_decoding(model, utts[: cfg.decode_utts], cfg, flops, rss)

    beam = cfg.beams
    figures = {
        "train_speedup": train["west"]["samples_per_s"] / train["seed"]["samples_per_s"],
        "train_speedup_cached": train["west_cached"]["samples_per_s"]
        / train["seed"]["samples_per_s"],
        "decode_speedup_greedy": decode["west_greedy"]["utt_per_s"]
        / decode["seed_greedy"]["utt_per_s"],
        f"decode_speedup_beam{beam}": decode[f"west_beam{beam}"]["utt_per_s"]
        / decode[f"seed_beam{beam}"]["utt_per_s"],
        "peak_rss_mb": {
            **{f"train/{k}": train[k]["peak_rss_mb"] for k in ("seed", "west", "west_cached")},
            **{f"decode/{k}": v["peak_rss_mb"] for k, v in decode.items() if k != "identical"},
            "process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
        "train": train,
        "decode": decode,
        "cache": {
            "build_s": round(cache_s, 3),
            "utterances": len(utts),
            "megabytes": round(cache_bytes / 2**20, 2),
            "dtype": cache.dtype,
            "cached_loss_abs_diff": train.pop("cached_loss_abs_diff"),
        },
        "models": {
            "tiny_random": cfg.tiny,
            "whisper": cfg.whisper,
            "llm": cfg.llm,
            "checkpoint": cfg.checkpoint,
            "encoder_params": count_params(model.encoder),
            "projector_params": count_params(model.projector),
            "llm_params": count_params(model.llm),
            "prompt_tokens": len(model.prompt.prefix_ids) + len(model.prompt.suffix_ids),
        },
        "data": {
            "path": data,
            "utterances": len(utts),
            "audio_s": round(sum(u.duration for u in utts), 2),
        },
        "config": {k: v for k, v in dataclasses.asdict(cfg).items()},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    if beam == 5:
        figures["decode_speedup_beam5"] = figures[f"decode_speedup_beam{beam}"]
    return figures


def format_table(r: dict) -> str:
    """The short human-readable summary: throughputs and WeST / seed ratios."""
    m, d, beam = r["machine"], r["data"], r["config"]["beams"]
    train, decode = r["train"], r["decode"]
    models = "tiny random models" if r["models"]["tiny_random"] else "real models"
    lines = [
        f"WeST benchmark: {models} ({Path(r['models']['whisper']).name} + "
        f"{Path(r['models']['llm']).name}), {d['utterances']} utts / {d['audio_s']:.1f} s audio",
        f"machine: {m['cpus']} CPUs, {m['torch_threads']} torch threads, load average "
        f"{m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end; "
        f"run took {r['wall_s']:.0f} s",
        "",
        f"training: batch {train['seed']['batch_size']}, {train['seed']['steps']} steps per path "
        "(interleaved), time = batch making + forward + backward + AdamW",
        f"{'path':<26}{'samples/s':>10}{'tokens/s':>10}{'x seed':>8}"
        f"{'FLOPs exec/need':>16}{'peak RSS MB':>13}",
    ]
    names = {
        "seed": "seed (30 s pad, 512 seq)",
        "west": "WeST (var len, grouped)",
        "west_cached": "WeST + encoder cache",
    }
    base = train["seed"]["samples_per_s"]
    for k, label in names.items():
        t = train[k]
        lines.append(
            f"{label:<26}{t['samples_per_s']:>10.3f}{t['tokens_per_s']:>10.1f}"
            f"{t['samples_per_s'] / base:>8.2f}{t['flops_ratio']:>16.2f}{t['peak_rss_mb']:>13.0f}"
        )
    c = r["cache"]
    lines += [
        f"encoder cache: first pass {c['build_s']:.1f} s for {c['utterances']} utts, "
        f"{c['megabytes']:.1f} MB ({c['dtype']}); |loss cached - uncached| = "
        f"{c['cached_loss_abs_diff']:.2e}",
        "",
        f"decoding: {decode['west_greedy']['utterances']} utts, max_new_tokens "
        f"{r['config']['max_new_tokens']}, WeST batch {r['config']['decode_batch_size']}, "
        "time = features + encoder + generate",
        f"{'path':<26}{'utt/s':>10}{'RTF':>10}{'x seed':>8}{'WER %':>8}"
        f"{'FLOPs exec/need':>16}{'peak RSS MB':>13}",
    ]
    labels = {
        "seed_greedy": ("seed greedy (b=1, 30 s)", "seed_greedy"),
        "west_greedy": ("WeST greedy (batched)", "seed_greedy"),
        "west_greedy_batch1": ("WeST greedy (b=1)", "seed_greedy"),
        f"seed_beam{beam}": (f"seed beam {beam} (b=1, 30 s)", f"seed_beam{beam}"),
        f"west_beam{beam}": (f"WeST beam {beam} (batched)", f"seed_beam{beam}"),
        f"west_beam{beam}_batch1": (f"WeST beam {beam} (b=1)", f"seed_beam{beam}"),
    }
    for k, (label, ref) in labels.items():
        if k not in decode:
            continue
        x = decode[k]
        wer = "n/a" if x["wer"] is None else f"{x['wer']:.1f}"
        lines.append(
            f"{label:<26}{x['utt_per_s']:>10.3f}{x['rtf']:>10.3f}"
            f"{x['utt_per_s'] / decode[ref]['utt_per_s']:>8.2f}{wer:>8}"
            f"{x['flops_ratio']:>16.2f}{x['peak_rss_mb']:>13.0f}"
        )
    same = decode["identical"]
    parts = [f"{k.replace('_', ' ')} {v['identical']}/{v['of']}" for k, v in same.items()]
    lines += [
        "identical hypotheses: " + "; ".join(parts),
        "tokens/s counts real content only (prompt + speech + transcript), the same for all paths;",
        "FLOPs need = that content's floor (encoder on real frames, no padding, one prefill per",
        "utterance, the shared prompt start once); peak RSS includes the models (sampled while",
        "each path ran)",
        "",
        f"train_speedup {r['train_speedup']:.2f}  train_speedup_cached "
        f"{r['train_speedup_cached']:.2f}  decode_speedup_greedy "
        f"{r['decode_speedup_greedy']:.2f}  decode_speedup_beam{beam} "
        f"{r[f'decode_speedup_beam{beam}']:.2f}  (WeST / seed throughput)",
    ]
    return "\n".join(lines)
