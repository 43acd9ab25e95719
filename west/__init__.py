"""WeST: We Speech Transcript, LLM-based speech recognition.

Transcribing with a trained model (a checkpoint, or a folder written by west-export):

>>> import west
>>> model = west.load("exp/run/checkpoint-600")
>>> texts = model.transcribe(["a.wav", "b.flac"])
"""

__version__ = "0.1.0"
__all__ = ["load", "Transcriber"]


def __getattr__(name: str):
    # Imported on first use, so `import west.scoring` stays free of torch and transformers.
    if name in __all__:
        from west import api

        return getattr(api, name)
    raise AttributeError(f"module 'west' has no attribute {name!r}")
