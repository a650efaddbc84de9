"""Independent diffusers reference loops of SwD, one module per model family.

Each ``swd_latents(...)`` is written from diffusers' own parts (its transformer/UNet, its
schedulers, its noise helper), never from the pack's code, so that the pack can be compared
with it seed for seed.
"""
