"""WeST: We Speech Transcript, LLM-based speech recognition.

Transcribing with a trained model (a checkpoint, or a folder written by west-export):

>>> import west
>>> model = west.load("exp/run/checkpoint-600")
>>> texts = model.transcribe(["a.wav", "b.flac"])
"""

__version__ = "0.1.0"
__all__ = ["load", "Transcriber"]

# Where each public name lives; imported on first use, so `import west.scoring` stays free
# of torch and transformers.
_HOMES = {"load": "west.loader", "Transcriber": "west.transcriber"}


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'west' has no attribute {name!r}")
