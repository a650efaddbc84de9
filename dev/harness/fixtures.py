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
def host(tmp_path_factory) -> Host:
    """ComfyUI imported in-process, with the stand-in models and this pack loaded.

    Its output and temp folders are the session's (pytest removes them after a passing run): the
    tests' saved models and latents would otherwise pile up, GBs a run, in the ComfyUI copy.
    """
    global _HOST
    if _HOST is None:
        _HOST = Host()
        _HOST.folder_paths.set_output_directory(str(tmp_path_factory.mktemp("output")))
        _HOST.folder_paths.set_temp_directory(str(tmp_path_factory.mktemp("temp")))
    return _HOST


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real ComfyUI server (main.py) for the session, with the stand-ins and this pack."""
    from .comfy_server import ComfyServer

    srv = ComfyServer(tmp_path_factory.mktemp("comfyui"), extra_args=["--preview-method", "latent2rgb"])
    yield srv
    srv.stop()
