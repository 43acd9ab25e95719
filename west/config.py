"""Dataclasses that describe a WeST model and a run.

`ModelArguments` is everything needed to rebuild the model: it is written as
`west_config.json` beside every checkpoint so decoding never repeats model flags
(WeNet's `train.yaml`). `DataArguments` says where the data is, and
`TrainingArguments` extends Hugging Face's with WeST's extra flags (and the 2024
reference's old names).

Parts with several settings are configured as one block (WeNet's `*_conf`):
`ctc_conf: {weight, vocab, compression}`, `context_conf: {prob, ...}` (biasing lists in
the prompt) and `projector_conf: {...}` (the chosen projector's constructor arguments). On the command line a block is a JSON mapping,
`--ctc_conf '{"weight": 1.0}'`; in a `--config` yaml, a mapping.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transformers

from west.checkpoint import CONFIG_NAME
from west.distributed import has_accelerator, world_size

CTC_VOCABS = ("full", "train", "chars")
COMPRESSIONS = ("none", "ctc", "ctc_soft")
# west_config.json keys written before the CTC settings became `ctc_conf`
OLD_CTC_KEYS = {"ctc_weight": "weight", "ctc_vocab": "vocab", "speech_compression": "compression"}
# Fields naming a file or folder: written as absolute paths when they exist here, so a
# checkpoint loads from any working directory (hub names stay as they are).
# (In this order the loader looks them up: the LLM folder before the GGUF file inside it.)
PATH_FIELDS = (
    "whisper_model_name_or_path",
    "llm_model_name_or_path",
    "llm_gguf_file",
    "chat_template",
    "projector_model_path",
)


def known_keys(name: str, cls: type, conf: dict[str, Any]) -> dict[str, Any]:
    """A copy of block `name`'s mapping, checked to hold only fields of dataclass `cls`."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(conf) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown keys {unknown}; known: {known}")
    return dict(conf)


def as_numbers(
    name: str, conf: dict[str, Any], keys: tuple[str, ...], nullable: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Block `name`'s mapping with the values of `keys` it holds as floats (None stays None
    for the `nullable` keys): ValueError naming the block and key for one that is not a
    number."""
    for key in keys:
        if key in conf and not (conf[key] is None and key in nullable):
            try:
                conf[key] = float(conf[key])
            except (TypeError, ValueError):
                raise ValueError(f"{name}: {key} must be a number, got {conf[key]!r}") from None
    return conf


@dataclass(frozen=True)
class CTCConf:
    """The CTC branch (`ctc_conf`).

    weight: of the auxiliary CTC loss on the projected frames (0 = no CTC branch);
    vocab: the tokens it scores: full (the LLM's vocabulary), train (those in the
      training transcripts: a 50k-150k-way output shrinks to a few thousand) or chars (the
      LLM's single-character tokens of the transcripts' characters: the branch spells);
    compression: what the LLM reads: none (every projected frame), ctc (blank frames
      dropped, repeats averaged), ctc_soft (as ctc, on CTC-posterior mixes of the LLM's
      token embeddings); ctc and ctc_soft need weight > 0.
    """

    weight: float = 0.0
    vocab: str = "full"
    compression: str = "none"

    def __post_init__(self):
        if self.vocab not in CTC_VOCABS:
            raise ValueError(f"ctc_conf: unknown vocab {self.vocab!r}; known: {CTC_VOCABS}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(
                f"ctc_conf: unknown compression {self.compression!r}; known: {COMPRESSIONS}"
            )
        if self.compression != "none" and self.weight <= 0:
            raise ValueError(
                f"ctc_conf: compression {self.compression!r} needs the CTC branch: "
                "set its weight > 0"
            )

    @classmethod
    def from_mapping(cls, conf: dict[str, Any]) -> CTCConf:
        conf = known_keys("ctc_conf", cls, conf)
        return cls(**as_numbers("ctc_conf", conf, ("weight",)))


@dataclass(frozen=True)
class ContextConf:
    """Biasing lists in the prompt (`context_conf`): training teaches the LLM to copy a
    word from a list when it hears it and to ignore the list when it does not.

    prob: the share of training utterances given a list (0: none, the prompt never holds
      one: the 2024 reference's set-up);
    own_prob: each of the utterance's own rare words is in its list with this probability;
    max_distractors: each list also holds 0 to this many rare words of other transcripts;
    num_common: the words outside the training transcripts' num_common most frequent are
      rare (the LibriSpeech biasing benchmark's 5,000);
    max_tokens: the longest list the prompt takes, in tokens (a longer one is an error);
    template: the text the list becomes, `{words}` replaced by its entries joined by ", ";
      it goes before the speech.
    The lists are shuffled; a list may be empty (the prompt is then as without one).
    """

    prob: float = 0.0
    own_prob: float = 0.5
    max_distractors: int = 50
    num_common: int = 5000
    max_tokens: int = 2048
    template: str = "Hotwords: {words}.\n"

    def __post_init__(self):
        for name in ("prob", "own_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(
                    f"context_conf: {name} must be in [0, 1], got {getattr(self, name)!r}"
                )
        for name in ("max_distractors", "num_common", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"context_conf: {name} must be an integer >= 0, got {value!r}")
        if "{words}" not in self.template:
            raise ValueError(f"context_conf: template {self.template!r} has no {{words}}")

    @classmethod
    def from_mapping(cls, conf: dict[str, Any]) -> ContextConf:
        conf = known_keys("context_conf", cls, conf)
        return cls(**as_numbers("context_conf", conf, ("prob", "own_prob")))

    @property
    def trained(self) -> bool:
        """Whether a model trained with this conf has seen lists in its prompt."""
        return self.prob > 0


@dataclass(frozen=True)
class MaskConf:
    """SpecAugment-style masks on the encoder's output in training (`speech_masking`;
    west.models.masking.mask_frames)."""

    time_masks: int = 0
    time_width: int = 10  # Whisper frames are 20 ms: 0.2 s
    channel_masks: int = 0
    channel_width: int = 32
    max_time_share: float = 0.2

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"speech_masking: {f.name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_mapping(cls, conf: dict[str, Any]) -> MaskConf:
        return cls(**known_keys("speech_masking", cls, conf))

    @property
    def active(self) -> bool:
        return self.time_masks > 0 or self.channel_masks > 0


ENGINES = ("west", "hf")  # decoding: west.models.search, or transformers' generate


@dataclass(frozen=True)
class DecodeConf:
    """How a trained model decodes unless told otherwise (`decode_conf`, saved with it).

    west-train fills it from its yaml's `decode:` mapping (the recipe's decoding), so
    west-transcribe, west-serve and `west.load` decode a checkpoint or an exported folder
    the way its recipe did. Every tool's flags still win.

    num_beams: beam size (1 = greedy);
    ctc_weight: joint CTC / LLM decoding weight; None: 0.5 for a model with a CTC branch
      (the audio then bounds what the LLM may write), else 0;
    engine: west (WeST's batched search) or hf (transformers' generate);
    max_new_tokens: per window of at most 28 s;
    max_tokens_per_second: a window's tokens are also capped at this many per second of its
      audio (+ 10): speech holds 2-5 tokens a second, so text beyond is a loop;
    hotword_bonus: what each token of a hotword adds to a hypothesis's log-probability in
      the search (west.models.context), when hotwords are given; 0 leaves them to the
      prompt (a model trained with context_conf);
    hotword_floor, hotword_gate: in joint CTC / LLM decoding, a hotword's tokens are at
      least this likely to the LLM (a log-probability: it never heard the name, the list
      says it may come), and a match starts only where the CTC prefix score of its first
      token is at least `hotword_gate` (the audio must support it): west.models.search.
    """

    num_beams: int = 1
    ctc_weight: float | None = None
    engine: str = "west"
    max_new_tokens: int = 200
    max_tokens_per_second: float = 12.0
    hotword_bonus: float = 3.0
    hotword_floor: float = -1.0
    hotword_gate: float = -8.0

    def __post_init__(self):
        if not isinstance(self.num_beams, int) or self.num_beams < 1:
            raise ValueError(
                f"decode_conf: num_beams must be an integer >= 1, got {self.num_beams!r}"
            )
        if self.ctc_weight is not None and not 0.0 <= self.ctc_weight < 1.0:
            raise ValueError(f"decode_conf: ctc_weight must be in [0, 1), got {self.ctc_weight!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"decode_conf: unknown engine {self.engine!r}; known: {ENGINES}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(
                f"decode_conf: max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}"
            )
        if not self.max_tokens_per_second > 0:
            raise ValueError(
                "decode_conf: max_tokens_per_second must be > 0, got "
                f"{self.max_tokens_per_second!r}"
            )
        if not self.hotword_bonus >= 0:
            raise ValueError(f"decode_conf: hotword_bonus must be >= 0, got {self.hotword_bonus!r}")

    @classmethod
    def from_mapping(cls, conf: dict[str, Any]) -> DecodeConf:
        conf = known_keys("decode_conf", cls, conf)
        beams = conf.get("num_beams")
        if isinstance(beams, list):  # a recipe's beam sweep: the model decodes with its widest
            conf["num_beams"] = max(beams)
        numbers = ("ctc_weight", "max_tokens_per_second", "hotword_bonus", "hotword_floor")
        numbers += ("hotword_gate",)
        return cls(**as_numbers("decode_conf", conf, numbers, nullable=("ctc_weight",)))

    def resolve(self, has_ctc: bool, **overrides) -> DecodeConf:
        """These settings with `overrides` (None: keep) applied and ctc_weight decided."""
        conf = dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})
        if conf.ctc_weight is None:
            conf = dataclasses.replace(conf, ctc_weight=0.5 if has_ctc else 0.0)
        return conf


def parse_block(name: str, value: dict | str | None) -> dict:
    """A `*_conf` block: a mapping, its JSON text (from the command line), or None ({})."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as e:
            msg = f"--{name}: {e}; expected a JSON mapping such as '{{\"key\": 1}}'"
            raise ValueError(msg) from None
    if not isinstance(value, dict):
        raise ValueError(f"--{name}: expected a mapping of setting: value, got {value!r}")
    return dict(value)


def absolute_if_local(value: str | None) -> str | None:
    """`value` as an absolute path when it names an existing file or folder, else as is."""
    if not value or "{" in value or "\n" in value:  # a hub name, or an inline chat template
        return value
    try:
        path = Path(value)
        return str(path.resolve()) if path.exists() else value
    except OSError:  # e.g. a name too long to be a path
        return value


@dataclass
class ModelArguments:
    llm_model_name_or_path: str = field(
        default="Qwen/Qwen2-1.5B-Instruct",
        metadata={"help": "transformers causal LM: hub name or local folder"},
    )
    llm_gguf_file: str | None = field(
        default=None,
        metadata={"help": "GGUF file inside (or path to) the LLM folder; needs `gguf`"},
    )
    whisper_model_name_or_path: str = field(
        default="tiny",
        metadata={
            "help": "openai-whisper name (tiny, small, large-v3), .pt checkpoint, or HF folder"
        },
    )
    encoder_type: str = field(
        default="auto",
        metadata={"help": "encoder registry name: auto, whisper (openai), hf_whisper"},
    )
    projector: str = field(default="conv1d", metadata={"help": "projector registry name"})
    # The 2024 reference's flat projector flags; the rest goes in projector_conf.
    encoder_projector_ds_rate: int = field(
        default=5, metadata={"help": "frames stacked (conv kernel = stride) per speech token"}
    )
    projector_hidden_size: int = field(default=2048)
    projector_conf: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "more constructor arguments of the chosen projector, a JSON mapping "
            '(e.g. \'{"num_layers": 4, "dropout": 0.1}\' for transformer)'
        },
    )
    projector_model_path: str | None = field(
        default=None,
        metadata={"help": "trained projector (and LoRA) weights, model.safetensors"},
    )
    freeze_encoder: bool = field(default=True)
    encoder_trainable_layers: int = field(
        default=0,
        metadata={
            "help": "train the encoder's last N blocks (and final LayerNorm) even when "
            "freeze_encoder: the encoder cache then holds the frozen blocks' output"
        },
    )
    freeze_llm: bool = field(default=True)
    lora_rank: int = field(default=0, metadata={"help": "LoRA rank on the LLM; 0 = no LoRA"})
    lora_alpha: int = field(default=16)
    lora_dropout: float = field(default=0.05)
    lora_target_modules: str = field(default="q_proj,k_proj,v_proj,o_proj")
    prompt: str = field(default="Transcribe the speech")
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "system turn; None keeps the chat template's default"},
    )
    chat_template: str | None = field(
        default=None,
        metadata={"help": "Jinja chat template (string or file) replacing the tokenizer's"},
    )
    speech_position: str = field(
        default="user",
        metadata={
            "help": "where the speech goes in the chat prompt: user (start of the user turn, "
            "before the instruction) or start (before the whole templated prompt, system turn "
            "included: the 2024 reference's layout)"
        },
    )
    pad_to_30s: bool = field(
        default=False,
        metadata={
            "help": "pad every utterance to 30 s (1500 encoder frames), as the 2024 reference "
            "did; False gives the encoder only the real frames"
        },
    )
    ctc_conf: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "the CTC branch, a JSON mapping: weight (of its loss; 0 = off), vocab "
            f"{CTC_VOCABS}, compression {COMPRESSIONS} (what the LLM reads); see CTCConf"
        },
    )
    context_conf: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "biasing lists in the prompt in training, a JSON mapping: prob (share of "
            "utterances given one; 0 = off), own_prob, max_distractors, num_common, "
            "max_tokens, template; see ContextConf"
        },
    )
    lm_weight: float = field(default=1.0, metadata={"help": "weight of the LLM's LM loss"})
    speech_masking: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "SpecAugment-style masks on the encoder's output in training, a JSON "
            "mapping: time_masks, time_width, channel_masks, channel_width, max_time_share "
            "(MaskConf); {} = none"
        },
    )
    decode_conf: dict | str | None = field(
        default_factory=dict,
        metadata={
            "help": "how the trained model decodes unless told otherwise, a JSON mapping: "
            "num_beams, ctc_weight, engine, max_new_tokens, max_tokens_per_second "
            "(DecodeConf); a --config yaml's `decode:` mapping fills it"
        },
    )

    def __post_init__(self):
        self.projector_conf = parse_block("projector_conf", self.projector_conf)
        ctc = CTCConf.from_mapping(parse_block("ctc_conf", self.ctc_conf))
        self.ctc_conf = dataclasses.asdict(ctc)  # every key, as west_config.json shows it
        context = ContextConf.from_mapping(parse_block("context_conf", self.context_conf))
        self.context_conf = dataclasses.asdict(context)
        masking = MaskConf.from_mapping(parse_block("speech_masking", self.speech_masking))
        self.speech_masking = dataclasses.asdict(masking)
        decode = DecodeConf.from_mapping(parse_block("decode_conf", self.decode_conf))
        self.decode_conf = dataclasses.asdict(decode)

    @property
    def masking(self) -> MaskConf:
        """`speech_masking`, typed."""
        return MaskConf(**self.speech_masking)

    @property
    def context(self) -> ContextConf:
        """`context_conf`, typed."""
        return ContextConf(**self.context_conf)

    @property
    def ctc(self) -> CTCConf:
        """`ctc_conf`, typed."""
        return CTCConf(**self.ctc_conf)

    @property
    def decode(self) -> DecodeConf:
        """`decode_conf`, typed."""
        return DecodeConf(**self.decode_conf)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `west_config.json`, local paths made absolute (see PATH_FIELDS)."""
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        data = dataclasses.asdict(self)
        for name in PATH_FIELDS:
            data[name] = absolute_if_local(data[name])
        gguf = self.llm_gguf_file
        if gguf and (Path(self.llm_model_name_or_path) / Path(gguf).name).is_file():
            data["llm_gguf_file"] = Path(gguf).name  # load_llm reads it from the LLM folder
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> ModelArguments:
        """Read `west_config.json` from a checkpoint folder (or its parent run folder)."""
        path = config_path(model_dir)
        if path is None:
            raise FileNotFoundError(
                f"{model_dir}: no {CONFIG_NAME} here or in the parent folder; "
                "expected a WeST checkpoint folder written by west-train"
            )
        data = migrate(json.loads(path.read_text()), path)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**data)


def config_path(model_dir: str | os.PathLike) -> Path | None:
    """The `west_config.json` of a model folder: its own, else its parent run folder's."""
    model_dir = Path(model_dir)
    for candidate in (model_dir / CONFIG_NAME, model_dir.parent / CONFIG_NAME):
        if candidate.is_file():
            return candidate
    return None


def migrate(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A west_config.json written before `ctc_conf`: its flat CTC keys moved into the block."""
    old = {k: data.pop(k) for k in OLD_CTC_KEYS if k in data}
    if old and data.get("ctc_conf"):
        raise ValueError(f"{path}: both ctc_conf and the old keys {sorted(old)}; keep one")
    if old:
        data["ctc_conf"] = {OLD_CTC_KEYS[k]: v for k, v in old.items()}
    return data


@dataclass
class DataArguments:
    data_path: str = field(
        default="train.jsonl",
        metadata={"help": "training data: jsonl file(s) or Kaldi data dir(s), comma-separated"},
    )
    eval_data_path: str | None = field(default=None)
    skip_bad_data: bool = field(
        default=False,
        metadata={"help": "skip (and count) bad utterances instead of refusing to start"},
    )
    max_speech_seconds: float = field(
        default=30.0, metadata={"help": "longest audio accepted (Whisper's window is 30 s)"}
    )
    cut_long_audio: bool = field(
        default=False,
        metadata={
            "help": "cut audio longer than --max_speech_seconds (with a warning); without it "
            "west-train leaves such utterances out (warned and counted) and west-recognize "
            "decodes them in windows cut at pauses"
        },
    )
    encoder_cache_dir: str | None = field(
        default=None,
        metadata={"help": "cache frozen-encoder outputs here (computed once, reused every epoch)"},
    )


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    model_max_length: int = field(
        default=512, metadata={"help": "longest LLM sequence (prompt + speech + text) in tokens"}
    )
    evaluation_strategy: str | None = field(
        default=None,
        metadata={"help": "old name of --eval_strategy (the 2024 reference's command)"},
    )
    warmup_ratio: float | None = field(
        default=None,
        metadata={"help": "old name of a fractional --warmup_steps (the 2024 reference)"},
    )
    optim: str = field(default="adamw_torch")
    remove_unused_columns: bool = field(default=False)
    length_grouping: bool = field(
        default=True, metadata={"help": "batch utterances of similar length together"}
    )
    ctc_only_steps: int = field(
        default=0,
        metadata={
            "help": "first steps train with the CTC loss alone (needs a ctc_conf weight > 0)"
        },
    )
    joint_speech_training: bool = field(
        default=True,
        metadata={
            "help": "after the CTC-only steps, keep training the speech side (encoder blocks, "
            "projector) with the LLM's adapters; False fixes it and trains the adapters alone "
            "(with no CTC-only steps it stays as loaded, e.g. by --projector_model_path)"
        },
    )
    log_utterance_keys: bool = field(
        default=False,
        metadata={
            "help": "audit trail: append each step's utterance keys to utterance_keys.rank<N>.txt "
            "and a fingerprint of the trained weights it starts from to weights.rank<N>.txt"
        },
    )
    lora_learning_rate: float | None = field(
        default=None,
        metadata={"help": "learning rate of the LoRA adapters (default: learning_rate)"},
    )
    encoder_learning_rate: float | None = field(
        default=None,
        metadata={"help": "learning rate of the trained encoder blocks (default: learning_rate)"},
    )

    def __post_init__(self):
        if not self.use_cpu and world_size() > 1 and not has_accelerator():
            # Without it transformers leaves each CPU process of a torchrun launch on its
            # own (world size 1): no gradient exchange, two copies writing one folder.
            self.use_cpu = True
        if self.evaluation_strategy is not None:
            self.eval_strategy = self.evaluation_strategy
        if self.warmup_ratio is not None:
            self.warmup_steps = self.warmup_ratio
        super().__post_init__()
