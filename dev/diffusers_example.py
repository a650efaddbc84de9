"""SwD with diffusers: the upstream README's call, through ``swd_core.run``, on the stand-in SD3.5 pipeline.

    PYTHONPATH=.:dev .venv/bin/python dev/diffusers_example.py   # from the pack's folder; writes swd_*.png here

``swd_core`` needs only torch (and diffusers for ``run``); outside ComfyUI the pack's folder can go on
PYTHONPATH. The stand-in pipeline has random weights (``harness.standins.sd3_pipeline``, in ``dev/``): the pictures are
noise-like; with the real model the same calls give the upstream pictures.
"""
import torch
from peft import PeftModel

import swd_core
from harness.standins.sd3_pipeline import STANDIN_LORA, build_standin_pipeline

device = "cuda" if torch.cuda.is_available() else "cpu"
# Real model: pipe = StableDiffusion3Pipeline.from_pretrained("stabilityai/stable-diffusion-3.5-large",
#                                                               torch_dtype=torch.float16)
pipe = build_standin_pipeline(lora=False)
pipe = pipe.to(device)
lora_path = STANDIN_LORA  # .host/models/loras/swd-standin-lora; real model: 'yresearch/swd-large-6-steps'
pipe.transformer = PeftModel.from_pretrained(pipe.transformer, lora_path)

# 1. The upstream README's call. Its published scales are [32, 48, 64, 80, 96, 128] (256 px start,
#    1024 px image); the stand-in runs the same 6-step schedule at a quarter of that (64 px -> 256 px).
generator = torch.Generator().manual_seed(0)
prompt = 'cat reading a newspaper'
sigmas = [1.0000, 0.9454, 0.8959, 0.7904, 0.7371, 0.6022]
scales = [8, 12, 16, 20, 24, 32]

images = swd_core.run(
    pipe,
    prompt,
    sigmas=torch.tensor(sigmas).to(device),
    timesteps=torch.tensor(sigmas[:-1]).to(device) * 1000,
    scales=scales,
    guidance_scale=0.0,
    height=int(scales[0] * 8),
    width=int(scales[0] * 8),
    generator=generator,
).images
images[0].save("swd_readme_call.png")

# 2. A preset by name and the final image size (any aspect ratio, multiples of 16 px).
images = swd_core.run(
    pipe,
    prompt,
    preset="SD3.5 Large, 6 steps",
    target_height=256,
    target_width=384,
    generator=torch.Generator().manual_seed(0),
).images
images[0].save("swd_preset_256x384.png")
print("wrote swd_readme_call.png and swd_preset_256x384.png")
