"""The GPU path on CPU: west-train under `torchrun --nproc_per_node 2` with DeepSpeed.

DeepSpeed runs on its CPU accelerator over gloo: the LLM is really partitioned by
`zero.Init` and the checkpoints are real ZeRO checkpoints, so code that only works on an
unpartitioned model fails here as it would on 8 GPUs. Every run is checked to be one run
of two processes: each process logs it is one of two, each step gives the two processes
different utterances, and both start every step from the same weights.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import kill_when, repeat_keys
from safetensors.torch import load_file

deepspeed = pytest.importorskip("deepspeed", reason="pip install -e .[deepspeed]")

ROOT = Path(__file__).resolve().parents[2]
ZERO3 = ROOT / "examples" / "librispeech" / "conf" / "ds_config_zero3.json"
# DeepSpeed's CPU communication op is compiled on first use into a cache keyed by its name
# only: one folder per DeepSpeed version, so a build by another version is never loaded.
EXTENSIONS = Path.home() / ".cache" / "torch_extensions" / f"deepspeed-{deepspeed.__version__}"
ENV = dict(
    os.environ,
    OMP_NUM_THREADS="1",
    TOKENIZERS_PARALLELISM="false",
    TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR", str(EXTENSIONS)),
)
STEPS = 6  # 12 utterances, 2 per process and step: 3 steps an epoch

# The trained parts the recipe confs use, each on top of the previous one; one of them in
# bf16, as the recipes train on GPUs (DeepSpeed then keeps fp32 master weights).
CTC = '{"weight": 0.5, "vocab": "train"}'
CHARS = '{"weight": 0.5, "vocab": "chars", "compression": "ctc_soft"}'
SETUPS = {
    "projector": [],
    "lora_bf16": ["--lora_rank", "4", "--bf16", "True"],
    "ctc": ["--lora_rank", "4", "--ctc_conf", CTC, "--ctc_only_steps", "1"],
    "encoder_blocks": ["--lora_rank", "4", "--ctc_conf", CTC, "--ctc_only_steps", "1",
                       "--encoder_trainable_layers", "1"],
    # a CTC branch that spells (its table of character tokens saved, its spelling rebuilt)
    "ctc_chars": ["--lora_rank", "4", "--ctc_conf", CHARS, "--ctc_only_steps", "1",
                  "--encoder_projector_ds_rate", "2"],
}  # fmt: skip
# Every trained part at once, each learning at every step: the set-up the back-ends are
# compared on. (During CTC-only steps the LoRA adapters get no gradient: torch's AdamW then
# leaves them alone, DeepSpeed's counts the step, and later steps differ by design.)
ALL_JOINT = ["--lora_rank", "4", "--ctc_conf", CTC, "--encoder_trainable_layers", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def data(speech_dir, tmp_path_factory) -> Path:
    """12 utterances: the 6 recordings under 2 keys each."""
    return repeat_keys(speech_dir / "data.jsonl", tmp_path_factory.mktemp("data") / "data.jsonl", 2)


@pytest.fixture(scope="module")
def zero2(tmp_path_factory) -> Path:
    """The recipes' DeepSpeed config at stage 2."""
    conf = json.loads(ZERO3.read_text())
    zero = conf["zero_optimization"]
    conf["zero_optimization"] = {k: v for k, v in zero.items() if not k.startswith("stage3")}
    conf["zero_optimization"]["stage"] = 2
    path = tmp_path_factory.mktemp("ds") / "ds_config_zero2.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


def _cmd(tiny_llm, tiny_whisper, data, exp, trained: list[str], deepspeed):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "west.bin.train",
        "--llm_model_name_or_path", str(tiny_llm),
        "--whisper_model_name_or_path", str(tiny_whisper),
        "--projector_hidden_size", "32",
        "--data_path", str(data), "--output_dir", str(exp),
        "--per_device_train_batch_size", "2", "--max_steps", str(STEPS),
        "--save_strategy", "steps", "--save_steps", "2",
        "--learning_rate", "1e-3", "--lr_scheduler_type", "cosine", "--warmup_steps", "0",
        "--logging_steps", "1", "--report_to", "none", "--seed", "3",
        "--gradient_checkpointing", "True", "--dataloader_num_workers", "0",
        "--log_utterance_keys", "True",
        *trained,
    ]  # fmt: skip
    if deepspeed:
        cmd += ["--deepspeed", str(deepspeed)]
    return cmd


def _run(cmd) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stderr + proc.stdout


def _losses(exp: Path) -> dict[int, float]:
    state = json.loads((exp / "trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


def _audit(exp: Path, name: str, rank: int) -> dict[int, str]:
    """step -> the rank's audit record (a step redone after a kill keeps its last one)."""
    records = {}
    for line in (exp / f"{name}.rank{rank}.txt").read_text().splitlines():
        step, rest = line.split(" ", 1)
        records[int(step)] = rest
    return records


def assert_one_run_of_two_processes(exp: Path, log: str) -> None:
    assert "process 0 of 2" in log
    keys = [_audit(exp, "utterance_keys", r) for r in (0, 1)]
    assert sorted(keys[0]) == sorted(keys[1]) == list(range(1, STEPS + 1))
    for step in keys[0]:
        mine, theirs = set(keys[0][step].split()), set(keys[1][step].split())
        assert len(mine) == len(theirs) == 2 and not mine & theirs, (step, mine, theirs)
    weights = [_audit(exp, "weights", r) for r in (0, 1)]
    assert weights[0] == weights[1]
    assert len(set(weights[0].values())) == STEPS  # and the weights move at every step


def assert_checkpoint_holds_what_was_trained(ckpt: Path, zero: int | None) -> None:
    from west.loader import load_model

    saved = load_file(ckpt / "model.safetensors")
    model = load_model(ckpt)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(saved) - {"ctc.tokens"} == trained
    assert (ckpt / "west_complete").is_file()
    if zero:  # the optimizer's slice per process; no file holds the frozen LLM or encoder
        step_dir = next(ckpt.glob("global_step*"))
        for rank in (0, 1):
            # (bf16_zero_pp_rank_... in bf16)
            assert list(step_dir.glob(f"*zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"))
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        model_states = list(step_dir.glob("*model_states.pt"))
        assert model_states
        for f in model_states:
            module = torch.load(f, map_location="cpu", weights_only=False)["module"]
            assert not frozen & set(module), f
            if zero == 3:  # ZeRO-2 keeps a frozen output matrix tied to the input embeddings
                assert (
                    sum(t.numel() for t in module.values())
                    < sum(p.numel() for n, p in model.named_parameters() if n in frozen) / 4
                )


def decode_and_score(model_dir: Path, data: Path, speech_dir: Path, tmp_path: Path, capsys):
    from west.bin.score import main as score
    from west.data.dataset import read_data
    from west.decode import recognize
    from west.loader import load_model

    model = load_model(model_dir)
    hyp = tmp_path / "decode" / "text"
    joint = 0.5 if model.ctc is not None else 0.0  # joint CTC / LLM decoding where it can
    recognize(model, read_data(str(speech_dir / "data.jsonl")), hyp, batch_size=3,
              num_beams=2, max_new_tokens=5, ctc_weight=joint)  # fmt: skip
    keys = [line.split(" ", 1)[0] for line in hyp.read_text().splitlines()]
    assert sorted(keys) == [f"utt{i}" for i in range(6)]
    capsys.readouterr()
    score([str(speech_dir / "text"), str(hyp)])
    report = capsys.readouterr().out
    assert "%WER" in report and "[PARTIAL]" not in report


# A build lock left by a killed build of an op this run never builds (a real one would hang it).
STALE_LOCK = Path(ENV["TORCH_EXTENSIONS_DIR"]) / "west_test_killed_build" / "lock"


@pytest.fixture(scope="module")
def unbroken_zero3(tiny_llm, tiny_whisper, data, tmp_path_factory) -> tuple[Path, str]:
    exp = tmp_path_factory.mktemp("zero3") / "exp"
    STALE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    STALE_LOCK.touch()
    os.utime(STALE_LOCK, (time.time() - 3600, time.time() - 3600))
    try:
        return exp, _run(_cmd(tiny_llm, tiny_whisper, data, exp, ALL_JOINT, ZERO3))
    finally:
        shutil.rmtree(STALE_LOCK.parent)


def test_a_left_over_build_lock_is_named_once_per_host(unbroken_zero3):
    _, log = unbroken_zero3
    warnings = [line for line in log.splitlines() if f"{STALE_LOCK} exists (60 min old)" in line]
    assert len(warnings) == 1, warnings  # local rank 0 speaks for the host
    assert f"rm {STALE_LOCK}" in warnings[0]


@pytest.mark.parametrize("setup", list(SETUPS))
def test_zero3_killed_resumes_saves_decodes(
    setup, tiny_llm, tiny_whisper, data, speech_dir, tmp_path, capsys
):
    exp = tmp_path / "exp"
    cmd = _cmd(tiny_llm, tiny_whisper, data, exp, SETUPS[setup], ZERO3)
    killed = kill_when(cmd, ENV, lambda: (exp / "checkpoint-2" / "west_complete").is_file())
    assert killed and not (exp / f"checkpoint-{STEPS}" / "west_complete").exists()
    log = _run(cmd)  # the same command resumes from the newest complete checkpoint
    assert "resuming from" in log
    assert sorted(_losses(exp)) == list(range(1, STEPS + 1))
    assert_one_run_of_two_processes(exp, log)
    assert_checkpoint_holds_what_was_trained(exp / f"checkpoint-{STEPS}", zero=3)
    decode_and_score(exp, data, speech_dir, tmp_path, capsys)


def test_killed_zero3_run_ends_where_an_unbroken_one_does(
    unbroken_zero3, tiny_llm, tiny_whisper, data, tmp_path
):
    whole, _ = unbroken_zero3
    exp = tmp_path / "exp"
    cmd = _cmd(tiny_llm, tiny_whisper, data, exp, ALL_JOINT, ZERO3)
    assert kill_when(cmd, ENV, lambda: (exp / "checkpoint-2" / "west_complete").is_file())
    _run(cmd)
    assert _losses(exp) == pytest.approx(_losses(whole), rel=1e-5)
    final, expected = load_file(exp / "model.safetensors"), load_file(whole / "model.safetensors")
    assert set(final) == set(expected)
    for name, tensor in expected.items():
        assert final[name].float().allclose(tensor.float(), rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("backend", ["zero2", "ddp"])
def test_zero2_and_plain_ddp_train_as_zero3_does(
    backend, unbroken_zero3, zero2, tiny_llm, tiny_whisper, data, tmp_path
):
    whole, _ = unbroken_zero3
    exp = tmp_path / "exp"
    log = _run(_cmd(tiny_llm, tiny_whisper, data, exp, ALL_JOINT,
                    zero2 if backend == "zero2" else None))  # fmt: skip
    assert_one_run_of_two_processes(exp, log)
    assert_checkpoint_holds_what_was_trained(
        exp / f"checkpoint-{STEPS}", zero=2 if backend == "zero2" else None
    )
    # Another back-end reduces the gradients in another order (buckets, averaging first or
    # last): the last bits differ, and Adam carries that on.
    assert _losses(exp) == pytest.approx(_losses(whole), rel=1e-3)
    final, expected = load_file(exp / "model.safetensors"), load_file(whole / "model.safetensors")
    assert set(final) == set(expected)
    for name, tensor in expected.items():
        x, y = final[name].double(), tensor.double()
        assert float((x - y).norm()) <= 1e-2 * float(y.norm()), name
