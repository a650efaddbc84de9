"""Test harness: the real ComfyUI host (in-process and as a server) and the stand-in models.

ComfyUI comes from COMFYUI_PATH (scripts/dev.py sets it; default .host/ComfyUI). Its root goes
first on sys.path; the pack's root never does (its `nodes/` would shadow ComfyUI's `nodes`).
The pack is loaded the way ComfyUI loads any custom node folder (`nodes.load_custom_node`).
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / ".host"
COMFYUI = Path(os.environ.get("COMFYUI_PATH", HOST / "ComfyUI")).resolve()
MODELS = HOST / "models"
EXTRA_PATHS = HOST / "extra_model_paths.yaml"
PACK_LINK = HOST / "custom_nodes" / "swd-scalewise"

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from comfy_host import ComfyHost, put_comfyui_first  # noqa: E402  (tests/lib is on the path now)

put_comfyui_first(COMFYUI)


def load_swd_core():
    """`swd_core` as a top-level package, without ComfyUI (it has only relative imports)."""
    if "swd_core" in sys.modules:
        return sys.modules["swd_core"]
    spec = importlib.util.spec_from_file_location(
        "swd_core", ROOT / "swd_core" / "__init__.py", submodule_search_locations=[str(ROOT / "swd_core")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["swd_core"] = module
    spec.loader.exec_module(module)
    return module


def load_script(name: str):
    """A module from scripts/ (by path: the repo root is never on sys.path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def core():
    return load_swd_core()


class Host(ComfyHost):
    """ComfyUI 0.3.75 imported in-process, with the stand-in models and this pack loaded."""

    def __init__(self):
        super().__init__(COMFYUI, EXTRA_PATHS, PACK_LINK)
        self.models = MODELS

    def run_prompt(self, prompt: dict, prompt_id: str = "test"):
        """Validate and execute an API-format prompt with ComfyUI's own executor.

        Returns ``(executor, messages)``; raises AssertionError with ComfyUI's validation errors.
        """
        import execution

        valid = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
        if not valid[0]:
            raise PromptInvalid(valid[1], valid[3])
        server = _RecordingServer()
        executor = execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC, cache_args={"ram": 0})
        executor.execute(prompt, prompt_id, {"client_id": "test"}, valid[2])
        return executor, server.messages


class PromptInvalid(AssertionError):
    def __init__(self, error, node_errors):
        super().__init__(f"{error} {node_errors}")
        self.error, self.node_errors = error, node_errors


class _RecordingServer:
    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))


_HOST: Host | None = None


@pytest.fixture(scope="session")
def host() -> Host:
    global _HOST
    if _HOST is None:
        _HOST = Host()
    return _HOST


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real ComfyUI server (main.py) for the session, with the stand-ins and this pack."""
    from comfy_server import ComfyServer

    srv = ComfyServer(tmp_path_factory.mktemp("comfyui"), extra_args=["--preview-method", "latent2rgb"])
    yield srv
    srv.stop()
