"""ComfyUI imported in-process with this pack loaded as ComfyUI loads custom nodes (tests, bench).

ComfyUI's root goes first on ``sys.path``; the pack's root never does (its ``nodes/`` would
shadow ComfyUI's ``nodes``). The pack is loaded with ``nodes.load_custom_node`` from
``.host/custom_nodes/swd-scalewise`` (a link to the checkout made by ``scripts/dev.py``).
`Host` adds the executor: API-format prompts validated and run by ComfyUI's own
``execution`` module, with the messages a server would send recorded.
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import sys
from pathlib import Path

import torch

from . import paths


def put_comfyui_first(comfyui: Path) -> None:
    """Put ComfyUI's root first on ``sys.path`` and set its arguments as ``main.py`` would."""
    root = str(Path(comfyui).resolve())
    if not (Path(root) / "main.py").exists():
        raise SystemExit(f"no ComfyUI at {root}: run `python3 scripts/dev.py setup` or set COMFYUI_PATH")
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True  # as `main.py --cpu`


class ComfyHost:
    """ComfyUI's nodes (stock and extras) plus this pack, with the stand-in model folders."""

    def __init__(self, comfyui: Path = paths.COMFYUI, extra_paths: Path = paths.EXTRA_PATHS,
                 pack: Path = paths.PACK_LINK, pytorch_attention: bool = False):
        put_comfyui_first(comfyui)
        from comfy.cli_args import args

        if pytorch_attention:
            args.use_pytorch_cross_attention = True
        from utils.extra_config import load_extra_path_config  # before `nodes`, which rebinds `utils`

        # isort: split
        import folder_paths
        import nodes

        load_extra_path_config(str(extra_paths))
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        if not asyncio.run(nodes.load_custom_node(str(pack))):
            raise RuntimeError("the pack failed to load in ComfyUI; see the log above")
        self.pack = sys.modules[str(pack).replace(".", "_x_")]
        self.swd_core = self.pack.swd_core
        self.nodes = nodes
        self.folder_paths = folder_paths

    def node(self, class_type: str):
        return self.nodes.NODE_CLASS_MAPPINGS[class_type]

    def load_custom_node(self, folder: Path) -> bool:
        """Load another custom node (a third-party one setup copied into ``.host/custom_nodes``) as ComfyUI
        does at start-up; once per folder. False if ComfyUI could not import it."""
        loaded = self.__dict__.setdefault("_loaded_custom_nodes", {})
        if str(folder) not in loaded:
            loaded[str(folder)] = asyncio.run(self.nodes.load_custom_node(str(folder)))
        return loaded[str(folder)]


class Host(ComfyHost):
    """`ComfyHost` with the stand-in models and ComfyUI's executor (what the tests use)."""

    def __init__(self, comfyui: Path = paths.COMFYUI):
        super().__init__(comfyui)
        self.models = paths.MODELS

    @contextlib.contextmanager
    def model_folder(self, kind: str, folder):
        """Within: ComfyUI also lists the files in ``folder`` as models of ``kind`` (``"loras"``, ...).

        On leaving, ComfyUI's file-list cache of ``kind`` is dropped too: it keeps each folder's mtime
        and fails with FileNotFoundError once a listed folder (a test's tmp_path) is deleted.
        """
        self.folder_paths.add_model_folder_path(kind, str(folder))
        try:
            yield Path(folder)
        finally:
            self.folder_paths.folder_names_and_paths[kind][0].remove(str(folder))
            self.folder_paths.filename_list_cache.pop(kind, None)

    def sampler_swd_custom_advanced(self, guider, preset: str, latent: torch.Tensor, seed: int) -> torch.Tensor:
        """The latent ``SamplerCustomAdvanced`` gives with SwD Sampler (SAMPLER) (bicubic), the SwD Schedule
        ``preset``'s sigmas, ``guider`` (a GUIDER) and ``RandomNoise(seed)``, from ``latent`` ``[B, C, H, W]``."""
        sched, sigmas = self.node("SwDSchedule").execute(preset, "", "").args
        sampler = self.node("SamplerSwD").execute(sched, "bicubic").args[0]
        noise = self.node("RandomNoise").execute(seed).args[0]
        out = self.node("SamplerCustomAdvanced").execute(noise, guider, sampler, sigmas, {"samples": latent})
        return out.args[0]["samples"]

    @staticmethod
    def release_memory() -> None:
        """Give back what finished tests leave: ComfyUI's loaded models unloaded, garbage collected (the
        executors' output caches hold whole models), and the freed heap handed back to the OS (glibc keeps
        it otherwise, and the next large model then lands on top of it)."""
        import gc

        import comfy.model_management

        comfy.model_management.unload_all_models()
        gc.collect()
        comfy.model_management.soft_empty_cache()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)

    @staticmethod
    def x0(patcher, x: torch.Tensor, sigma: float, **model_conds) -> torch.Tensor:
        """The clean-latent prediction ``[B, C, H, W]`` (float32, CPU) of ``patcher``'s model at ``sigma``
        for ``x``, with its patches applied: ComfyUI's ``load_models_gpu`` then ``apply_model``.
        ``model_conds`` are ``apply_model``'s keyword inputs (``c_crossattn``, ``y``, ``guidance``, ...)."""
        import comfy.model_management

        comfy.model_management.load_models_gpu([patcher])
        dev = patcher.load_device
        with torch.no_grad():
            out = patcher.model.apply_model(x.to(dev), torch.full((x.shape[0],), sigma, device=dev),
                                            **{k: v.to(dev) for k, v in model_conds.items()})
        return out.float().cpu()

    def run_prompt(self, prompt: dict, prompt_id: str = "test"):
        """Validate and execute an API-format prompt with ComfyUI's own executor.

        Returns ``(executor, messages)``; raises `PromptInvalid` with ComfyUI's validation errors.
        """
        import execution
        import nodes

        # as POST /prompt: the pack's on_prompt handler sees the prompt before it is validated
        sys.modules[nodes.NODE_CLASS_MAPPINGS["SwDSchedule"].__module__].remember_prompt({"prompt": prompt})
        valid = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
        if not valid[0]:
            raise PromptInvalid(valid[1], valid[3])
        server = _RecordingServer()
        cache_args = {"ram": 0, "ram_inactive": 0}  # ComfyUI 0.33+ also reads ram_inactive
        executor = execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC, cache_args=cache_args)
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
