"""west-serve: an OpenAI-compatible transcription server with dynamic batching.

app.py (HTTP routes), batcher.py (the decoding worker), formats.py (response formats),
metrics.py (Prometheus text). Entry point: west/bin/serve.py.
"""
