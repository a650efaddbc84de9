"""pytest fixtures for the tiers that use ComfyUI (``tests/host``, ``tests/server``, ``tests/tools``).

Importing this module puts ComfyUI's root first on ``sys.path`` (so test modules may import
``comfy`` at the top); the ComfyUI host itself is built lazily, once per session.
"""
from __future__ import annotations

import pytest

from . import paths
from .comfy_host import Host, put_comfyui_first

put_comfyui_first(paths.COMFYUI)

_HOST: Host | None = None


@pytest.fixture(scope="session")
def host() -> Host:
    """ComfyUI imported in-process, with the stand-in models and this pack loaded."""
    global _HOST
    if _HOST is None:
        _HOST = Host()
    return _HOST


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real ComfyUI server (main.py) for the session, with the stand-ins and this pack."""
    from .comfy_server import ComfyServer

    srv = ComfyServer(tmp_path_factory.mktemp("comfyui"), extra_args=["--preview-method", "latent2rgb"])
    yield srv
    srv.stop()
