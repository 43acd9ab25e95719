"""west.loader (west.load): a model folder (checkpoint or export) loads from any working directory;
west-export writes one.

The model is tiny and random, so its texts are garbage, but deterministic: the tests
compare texts between paths (checkpoint vs export, one working directory vs another).
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from safetensors.torch import save_file

import west
from west.bin.export import main as export_main
from west.config import ModelArguments
from west.export import export_model, training_summary
from west.loader import find_relative, resolve_paths
from west.models.build import build_model

# Tiny matrices: on a shared 2-core machine, threads only wait for each other.
pytestmark = pytest.mark.usefixtures("one_thread")


def make_model_dir(model_args, path, trainer_state: dict | None = None):
    """A 'trained' checkpoint folder: the random projector's weights and the config."""
    model = build_model(model_args)
    path.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in model.trainable_state_dict().items()},
        str(path / "model.safetensors"),
    )
    model_args.save(path)
    if trainer_state is not None:
        (path / "trainer_state.json").write_text(json.dumps(trainer_state))
    return path


TRAINER_STATE = {
    "global_step": 40,
    "max_steps": 40,
    "epoch": 2.0,
    "log_history": [
        {"loss": 5.1234, "step": 20, "epoch": 1.0},
        {"loss": 3.5678, "step": 40, "epoch": 2.0},
        {"train_loss": 4.2, "step": 40},
    ],
}


@pytest.fixture(scope="module")
def model_dir(model_args, tmp_path_factory):
    return make_model_dir(
        model_args, tmp_path_factory.mktemp("exp") / "checkpoint-40", TRAINER_STATE
    )


@pytest.fixture(scope="module")
def wavs(speech_dir):
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


@pytest.fixture(scope="module")
def texts(model_dir, wavs):
    return west.load(model_dir, max_new_tokens=6).transcribe(wavs)


def test_training_summary(model_dir):
    summary = training_summary(model_dir)
    assert summary["global_step"] == 40 and summary["final_loss"] == 3.5678
    # From the run folder, the newest checkpoint's state is found.
    assert training_summary(model_dir.parent)["global_step"] == 40


def test_export_loads_and_gives_identical_output(model_dir, model_args, wavs, texts, tmp_path):
    out = tmp_path / "my-asr"
    assert export_main(["--model_dir", str(model_dir), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "model.safetensors",
        "west_config.json",
    ]
    card = (out / "README.md").read_text()
    n_projector = sum(
        v.numel()
        for k, v in build_model(model_args).state_dict().items()
        if k.startswith("projector.")
    )
    for needed in (
        model_args.llm_model_name_or_path,
        model_args.whisper_model_name_or_path,
        "`conv1d`",
        f"{n_projector:,} parameters",
        f"`{model_args.prompt}`",
        "steps: 40",
        "final training loss: 3.5678",
        f"west-transcribe --model_dir {out} a.wav",
        f'west.load("{out}"',
        "| decoding (`decode_conf`) | greedy, the LLM alone, engine `west`, at most 200 tokens",
    ):
        assert needed in card, needed
    saved = json.loads((out / "west_config.json").read_text())
    assert saved["projector_model_path"] is None
    assert saved["decode_conf"] == ModelArguments.load(model_dir).decode_conf  # travels with it
    assert west.load(out, max_new_tokens=6).transcribe(wavs) == texts
    # A second export into the same folder is refused unless asked for.
    assert export_main(["--model_dir", str(model_dir), "--output", str(out)]) == 1
    assert export_model(model_dir, out, overwrite=True) == out


# ---- relative paths in west_config.json --------------------------------------------------


@pytest.fixture(scope="module")
def old_recipe(model_dir, model_args, tmp_path_factory):
    """An older run: recipe/exp/<conf>/checkpoint-40 whose config names the encoder and
    the LLM relative to the recipe folder (exp/models/...), and the chat template relative
    to the run folder."""
    recipe = tmp_path_factory.mktemp("recipe")
    models = recipe / "exp" / "models"
    models.mkdir(parents=True)
    whisper = shutil.copy(model_args.whisper_model_name_or_path, models / "whisper.pt")
    shutil.copytree(model_args.llm_model_name_or_path, models / "llm")
    run = recipe / "exp" / "conf1"
    ckpt = run / "checkpoint-40"
    shutil.copytree(model_dir, ckpt)
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    (run / "template.jinja").write_text(template)
    config = dataclasses.replace(
        ModelArguments.load(ckpt),
        whisper_model_name_or_path="exp/models/whisper.pt",
        llm_model_name_or_path="exp/models/llm",
        chat_template="template.jinja",
    )
    config.save(ckpt)
    assert whisper.is_file()
    return ckpt


def test_old_checkpoint_loads_from_any_working_directory(old_recipe, wavs, monkeypatch, tmp_path):
    monkeypatch.chdir(old_recipe.parents[2])  # the recipe folder, where the paths are true
    from_recipe = west.load(old_recipe, max_new_tokens=6)
    assert from_recipe.model.config.whisper_model_name_or_path == "exp/models/whisper.pt"
    expected = from_recipe.transcribe(wavs[:2])
    monkeypatch.chdir(tmp_path)  # nothing of the run here
    elsewhere = west.load(old_recipe, max_new_tokens=6)
    config = elsewhere.model.config
    assert config.whisper_model_name_or_path == str(old_recipe.parents[2] / "exp/models/whisper.pt")
    assert config.llm_model_name_or_path == str(old_recipe.parents[2] / "exp/models/llm")
    assert config.chat_template == str(old_recipe.parent / "template.jinja")
    assert elsewhere.transcribe(wavs[:2]) == expected


def test_missing_relative_path_names_config_key_and_places(old_recipe, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = dataclasses.replace(
        ModelArguments.load(old_recipe), whisper_model_name_or_path="exp/models/gone.pt"
    )
    source = str(old_recipe / "west_config.json")
    with pytest.raises(FileNotFoundError) as e:
        resolve_paths(config, old_recipe, source)
    message = str(e.value)
    assert message.startswith(f"{source}: whisper_model_name_or_path 'exp/models/gone.pt'")
    for tried in (tmp_path, old_recipe, old_recipe.parent, old_recipe.parents[2]):
        assert str(tried / "exp/models/gone.pt") in message
    # Through west.load, from the saved file.
    config.save(tmp_path / "broken")
    shutil.copy(old_recipe / "model.safetensors", tmp_path / "broken")
    with pytest.raises(FileNotFoundError, match="whisper_model_name_or_path 'exp/models/gone.pt'"):
        west.load(tmp_path / "broken")


def test_hub_names_and_inline_templates_are_left_alone(old_recipe, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = ModelArguments(
        whisper_model_name_or_path="large-v3",
        llm_model_name_or_path="Qwen/Qwen2-1.5B-Instruct",
        llm_gguf_file="qwen2-1_5b-instruct-q8_0.gguf",  # a file of the hub repository
        chat_template="{{ messages[0]['content'] }}",
    )
    assert resolve_paths(config, old_recipe, "west_config.json") == config
    assert find_relative("large-v3", old_recipe) is None


def test_old_checkpoint_exports_from_any_working_directory(old_recipe, wavs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    out = export_model(old_recipe, tmp_path / "exported")
    saved = json.loads((out / "west_config.json").read_text())
    recipe = old_recipe.parents[2]
    assert saved["whisper_model_name_or_path"] == str(recipe / "exp/models/whisper.pt")
    assert saved["llm_model_name_or_path"] == str(recipe / "exp/models/llm")
    assert saved["chat_template"] == "chat_template.jinja"
    assert (out / "chat_template.jinja").read_text() == (
        old_recipe.parent / "template.jinja"
    ).read_text()
    monkeypatch.chdir(old_recipe)
    assert west.load(out, max_new_tokens=6).transcribe(wavs[:2]) == west.load(
        old_recipe, max_new_tokens=6
    ).transcribe(wavs[:2])
