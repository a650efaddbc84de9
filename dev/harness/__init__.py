"""The project's development harness: paths, the ComfyUI host (in-process and server), stand-in
model builders (one module per model family) and diffusers reference loops (one per family).

Imported by the tests, the benchmarks, the demo and the soak; imports none of them. Its folder's
parent (``dev/``) is on ``sys.path`` (``scripts/dev.py`` and ``tests/pytest.ini`` put it there);
the repository root never is, because the pack's ``nodes/`` would shadow ComfyUI's ``nodes``.
"""
