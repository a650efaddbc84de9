"""Scale-wise Distillation (SwD) for ComfyUI: SwD LoRA loader, schedules and scale-wise samplers.

ComfyUI imports this folder as a package and calls `comfy_entrypoint` (V3 node API).
`swd_core` holds the host-independent code and is importable without ComfyUI.
"""
try:
    import comfy  # noqa: F401  (only present inside ComfyUI)
except ImportError:  # imported outside ComfyUI, e.g. to reach swd_core
    comfy = None

#: The browser side (ComfyUI serves it as /extensions/<this folder>/): swd.js writes the nodes'
#: messages on the nodes and shows the running preset in SwD Schedule; docs/ are the node help pages.
WEB_DIRECTORY = "./web"

if comfy is not None:
    from .nodes import comfy_entrypoint  # noqa: F401  (errors here must reach ComfyUI's log)

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"] if comfy is not None else []
