"""WeST: We Speech Transcript, LLM-based speech recognition."""

__version__ = "0.1.0"
