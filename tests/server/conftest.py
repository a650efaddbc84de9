"""The server tier: ComfyUI fixtures (``host``, ``server``) from the harness."""
from harness.fixtures import host, server  # noqa: F401  (pytest fixtures)
