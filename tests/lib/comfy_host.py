"""ComfyUI imported in-process with this pack loaded as ComfyUI loads custom nodes (tests, bench).

ComfyUI's root goes first on ``sys.path``; the pack's root never does (its ``nodes/`` would
shadow ComfyUI's ``nodes``). The pack is loaded with ``nodes.load_custom_node`` from
``.host/custom_nodes/swd-scalewise`` (a link to the checkout made by ``scripts/dev.py``).
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
HOST_DIR = ROOT / ".host"
EXTRA_PATHS = HOST_DIR / "extra_model_paths.yaml"
PACK_LINK = HOST_DIR / "custom_nodes" / "swd-scalewise"


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

    def __init__(self, comfyui: Path, extra_paths: Path = EXTRA_PATHS, pack: Path = PACK_LINK,
                 pytorch_attention: bool = False):
        put_comfyui_first(comfyui)
        from comfy.cli_args import args

        if pytorch_attention:
            args.use_pytorch_cross_attention = True
        from utils.extra_config import load_extra_path_config  # before `nodes`, which rebinds `utils`
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
