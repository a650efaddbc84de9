"""The one place the pack imports ComfyUI's node API from (pin a version here if needed)."""
from comfy_api.latest import ComfyExtension, io, ui

SwDScheduleType = io.Custom("SWD_SCHEDULE")

__all__ = ["ComfyExtension", "io", "ui", "SwDScheduleType"]
