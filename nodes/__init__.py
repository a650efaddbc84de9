"""ComfyUI adapters for swd_core: thin V3 nodes that translate ComfyUI types."""
from . import feedback
from ._api import ComfyExtension, io
from .lora import SwDLoraLoader
from .sampler import SamplerSwD, SwDSampler
from .schedule import SwDSchedule, file_under_wrong_input, remember_prompt

feedback.register_routes(remember_prompt, file_under_wrong_input)

NODES: list[type[io.ComfyNode]] = [SwDSchedule, SwDSampler, SamplerSwD, SwDLoraLoader]


class SwDExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> SwDExtension:
    return SwDExtension()
