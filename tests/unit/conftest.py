"""The unit tier: ``swd_core`` only. Nothing here (or in these tests) may import ComfyUI."""
