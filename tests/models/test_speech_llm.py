"""SpeechLLM with tiny random models, a real tokenizer and real speech."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from west.data.batching import collate
from west.data.dataset import SpeechDataset, read_data, validate
from west.models.build import build_model, load_trained
from west.models.llm import build_prompt


@pytest.fixture(scope="module")
def model(model_args):
    torch.manual_seed(0)
    return build_model(model_args).eval()


@pytest.fixture(scope="module")
def batch(model, speech_dir):
    utts = validate(read_data(str(speech_dir / "data.jsonl")))
    dataset = SpeechDataset(utts, model.encoder.n_mels, model.tokenizer)
    return collate([dataset[i] for i in range(4)])


def test_prompt_end_token_comes_from_template(model):
    tok = model.tokenizer
    assert tok.convert_ids_to_tokens(model.prompt.end_id) == "<|im_end|>"
    assert model.prompt.end_id in model.stop_ids
    suffix = tok.decode(model.prompt.suffix_ids)
    assert suffix.startswith("Transcribe the speech") and suffix.rstrip().endswith("assistant")


def test_system_prompt_and_template_override(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    default = build_prompt(tok, "Transcribe")
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    short = build_prompt(tok, "Transcribe", chat_template=template)
    assert len(short.prefix_ids) < len(default.prefix_ids)  # no default system turn
    assert tok.decode(short.prefix_ids) == "<|im_start|>user\n"
    custom = build_prompt(tok, "Transcribe", system_prompt="You write what is said.")
    assert "You write what is said." in tok.decode(custom.prefix_ids)


def test_speech_position_start_is_the_whole_template_after_the_speech(tokenizer_dir):
    """speech_position "start", the 2024 reference's layout: speech, then the templated
    prompt (default system turn, user turn with the instruction, assistant tag)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    user = build_prompt(tok, "Transcribe the speech")
    start = build_prompt(tok, "Transcribe the speech", speech_position="start")
    assert start.prefix_ids == []
    chat = [{"role": "user", "content": "Transcribe the speech"}]
    text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert start.suffix_ids == tok(text, add_special_tokens=False).input_ids
    assert tok.decode(start.suffix_ids).startswith(tok.decode(user.prefix_ids))  # system turn
    assert tok.decode(user.prefix_ids + user.suffix_ids) == tok.decode(start.suffix_ids)
    assert start.end_id == user.end_id
    with pytest.raises(ValueError, match=r"speech_position 'end': expected one of"):
        build_prompt(tok, "Transcribe the speech", speech_position="end")


@pytest.fixture(scope="module")
def speech_first(model):
    """The `model` fixture's encoder, projector and LLM, with the speech before the prompt."""
    from west.models.speech_llm import SpeechLLM

    config = dataclasses.replace(model.config, speech_position="start")
    prompt = build_prompt(model.tokenizer, config.prompt, speech_position="start")
    return SpeechLLM(config, model.encoder, model.projector, model.llm, model.tokenizer, prompt)


def test_speech_first_sequences_start_with_the_speech(speech_first, batch):
    speech, lens = speech_first.speech_embeddings(batch["mel"], batch["mel_lens"])
    end = torch.tensor([speech_first.prompt.end_id])
    targets = [torch.cat([batch["text_ids"][i, : batch["text_lens"][i]], end]) for i in range(4)]
    inputs, mask, labels = speech_first._assemble(speech, lens, targets, left_pad=False)
    n_suffix = len(speech_first.prompt.suffix_ids)
    for i in range(4):
        n = int(lens[i])
        assert torch.equal(inputs[i, :n], speech[i, :n])
        assert (labels[i, : n + n_suffix] == -100).all()  # the loss is on the transcript only
        assert labels[i, n + n_suffix] == targets[i][0]
    out = speech_first(**batch)
    assert torch.isfinite(out["loss"])


def test_speech_first_decoding_west_equals_hf(speech_first, batch):
    """An empty shared prompt start: the search reads nothing before the rows, and greedy
    decoding gives transformers' generate's tokens, batched and one utterance at a time."""
    west = speech_first.generate(batch["mel"], batch["mel_lens"], max_new_tokens=8)
    hf = speech_first.generate(batch["mel"], batch["mel_lens"], max_new_tokens=8, engine="hf")
    assert west == hf and len(west) == 4 and all(west)
    for i in range(4):
        n = int(batch["mel_lens"][i])
        mel, lens = batch["mel"][i : i + 1, :, :n], batch["mel_lens"][i : i + 1]
        assert speech_first.generate(mel, lens, max_new_tokens=8) == [west[i]]
    beams = speech_first.generate(batch["mel"], batch["mel_lens"], num_beams=3, max_new_tokens=8)
    assert len(beams) == 4 and all(beams)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batched_decoding_equals_single(model, batch, num_beams):
    texts = model.generate(batch["mel"], batch["mel_lens"], num_beams=num_beams, max_new_tokens=8)
    assert len(texts) == 4 and all(texts)
    for i in range(4):
        n = int(batch["mel_lens"][i])
        alone = model.generate(
            batch["mel"][i : i + 1, :, :n],
            batch["mel_lens"][i : i + 1],
            num_beams=num_beams,
            max_new_tokens=8,
        )
        assert alone == [texts[i]]


def test_training_steps_lower_the_loss(model_args, batch):
    torch.manual_seed(0)
    config = dataclasses.replace(model_args, ctc_conf={"weight": 0.5})
    model = build_model(config).train()
    params = [p for p in model.parameters() if p.requires_grad]
    assert {n for n, p in model.named_parameters() if p.requires_grad and "projector" not in n} == {
        "ctc.blank"
    }
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(15):
        out = model(**batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
        assert torch.isfinite(out["ctc_loss"]) and torch.isfinite(out["lm_loss"])
    assert losses[-1] < 0.8 * losses[0], losses


def test_lora_trains_adapters_only(model_args, batch):
    config = dataclasses.replace(model_args, lora_rank=4, lora_target_modules="q_proj,v_proj")
    model = build_model(config)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable)
    assert all(n.startswith("projector.") or "lora_" in n for n in trainable)
    out = model(**batch)
    out["loss"].backward()
    lora = next(p for n, p in model.named_parameters() if "lora_B" in n)
    assert lora.grad is not None


def test_checkpoint_round_trip(model_args, batch, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    config = dataclasses.replace(model_args, lora_rank=4)
    trained = build_model(config).eval()
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # as if trained: lora_B is no longer zero
    save_file(trained.trainable_state_dict(), str(tmp_path / "model.safetensors"))
    torch.manual_seed(2)
    loaded = build_model(dataclasses.replace(config, projector_model_path=str(tmp_path))).eval()
    with torch.no_grad():
        a = trained(**batch)["loss"]
        b = loaded(**batch)["loss"]
    assert float(a) == pytest.approx(float(b), abs=1e-6)
    assert trained.generate(batch["mel"], batch["mel_lens"], max_new_tokens=6) == loaded.generate(
        batch["mel"], batch["mel_lens"], max_new_tokens=6
    )


def test_checkpoint_that_does_not_fit_names_tensor_and_shapes(model_args, tmp_path):
    from safetensors.torch import save_file

    model = build_model(model_args)
    state = model.trainable_state_dict()
    state["projector.linear1.weight"] = torch.zeros(7, 3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(
        ValueError,
        match=r"projector.linear1.weight has shape \(7, 3\) but the model expects \(32, 64\)",
    ):
        load_trained(model, tmp_path)


def test_llama_and_linear_projector(model_args, tiny_llama, batch):
    config = dataclasses.replace(
        model_args, llm_model_name_or_path=str(tiny_llama), projector="linear"
    )
    model = build_model(config).eval()
    assert type(model.llm).__name__ == "LlamaForCausalLM"
    assert torch.isfinite(model(**batch)["loss"])
    assert len(model.generate(batch["mel"], batch["mel_lens"], max_new_tokens=4)) == 4


def test_pad_to_30s_gives_300_speech_tokens(model_args, speech_dir):
    config = dataclasses.replace(model_args, pad_to_30s=True)
    model = build_model(config).eval()
    utts = validate(read_data(str(speech_dir / "data.jsonl")))
    item = SpeechDataset(utts[:1], 80, model.tokenizer, pad_to_30s=True)[0]
    assert item["mel"].shape[-1] == 3000
    b = collate([item])
    speech, lens = model.speech_embeddings(b["mel"], b["mel_lens"])
    assert lens.tolist() == [300]


def test_lm_loss_on_transcript_positions_equals_full_logits(model, batch):
    import torch.nn.functional as F

    speech, lens = model.speech_embeddings(batch["mel"], batch["mel_lens"])
    end = torch.tensor([model.prompt.end_id])
    targets = [torch.cat([batch["text_ids"][i, : batch["text_lens"][i]], end]) for i in range(4)]
    inputs, mask, labels = model._assemble(speech, lens, targets, left_pad=False)
    with torch.no_grad():
        logits = model.llm(inputs_embeds=inputs, attention_mask=mask).logits
        full = F.cross_entropy(
            logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
        )
        assert float(model.lm_loss(inputs, mask, labels)) == pytest.approx(float(full), rel=1e-5)


def test_ctc_only_warm_up_skips_the_llm(model_args, batch):
    config = dataclasses.replace(model_args, ctc_conf={"weight": 0.7})
    model = build_model(config)
    out = model(**batch, lm_weight=0.0)
    assert "lm_loss" not in out
    assert float(out["loss"]) == pytest.approx(0.7 * float(out["ctc_loss"]), rel=1e-6)
    joint = model(**batch)
    assert "lm_loss" in joint


def test_output_capped_by_speech_length(model, batch):
    capped = model.generate(
        batch["mel"], batch["mel_lens"], max_new_tokens=30, tokens_per_speech_vector=0.0
    )  # cap: 8 tokens each
    free = model.generate(
        batch["mel"], batch["mel_lens"], max_new_tokens=30, tokens_per_speech_vector=None
    )
    for c, f in zip(capped, free):
        assert f.startswith(c)  # greedy: the capped output is the free one, cut short
    assert sum(map(len, capped)) < sum(map(len, free))
