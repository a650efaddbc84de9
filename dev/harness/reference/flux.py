"""Independent diffusers reference of upstream's FLUX SwD procedure (``yresearch/swd_flux``).

Written from upstream's description, not from the pack: diffusers' ``FluxTransformer2DModel``
with diffusers' own latent packing (``FluxPipeline._pack_latents``/``_unpack_latents``/
``_prepare_latent_image_ids``), the distilled guidance embedding (one model call per step, no
CFG), and the scale-wise loop: ``x0 = x - sigma * v``, bicubic ``F.interpolate`` of the
unpacked 4-D ``x0`` to the next size, re-noise ``(1 - s) * x0 + s * noise`` with fresh noise.
Optionally with a diffusers ``FluxControlNetModel`` (`controlnet_hook`), called as
``FluxControlNetPipeline`` calls it, its hint rebuilt for every scale's size.
One CPU generator draws the first-scale noise for the whole batch, then one tensor per
re-noise, in float32 (diffusers' ``randn_tensor`` with a CPU generator).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

LATENT_CHANNELS = 16
VAE_SCALE_FACTOR = 8  # FLUX's VAE: 8x; packing needs even latent sizes (2x2 patches)
#: ``(h, w) -> [B, h/2 * w/2, C]``: a model input made for the step's latent size, packed.
ImageInput = Callable[[int, int], torch.Tensor]


@torch.no_grad()
def velocity(transformer, x: torch.Tensor, sigma: float, prompt_embeds: torch.Tensor, pooled: torch.Tensor,
             text_ids: torch.Tensor, guidance: float, controlnet: Callable | None = None,
             image_input: ImageInput | None = None) -> torch.Tensor:
    """The transformer's flow velocity ``v [B, 16, h, w]`` for the unpacked latent ``x [B, 16, h, w]``.

    As ``FluxPipeline.__call__`` calls it: packed latents, ``timestep = sigma`` (the pipeline
    passes ``t / 1000``; the transformer multiplies by 1000 itself), ``guidance`` as a ``[B]``
    tensor (also multiplied by 1000 inside). ``controlnet(inputs, (h, w))`` (`controlnet_hook`) gets the
    transformer's keyword inputs and gives its ControlNet arguments. ``image_input(h, w)``, if given, is
    appended to the packed latents' features (``FluxFillPipeline``: ``torch.cat((latents,
    masked_image_latents), dim=2)``).
    """
    from diffusers import FluxPipeline

    b, c, h, w = x.shape
    packed = FluxPipeline._pack_latents(x, b, c, h, w)
    if image_input is not None:
        packed = torch.cat((packed, image_input(h, w).to(packed)), dim=2)
    img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, x.device, x.dtype)
    inputs = dict(
        hidden_states=packed,
        timestep=torch.full((b,), sigma, device=x.device, dtype=x.dtype),
        guidance=torch.full((b,), guidance, device=x.device, dtype=torch.float32),
        pooled_projections=pooled,
        encoder_hidden_states=prompt_embeds,
        txt_ids=text_ids,
        img_ids=img_ids,
    )
    extra = {} if controlnet is None else controlnet(inputs, (h, w))
    out = transformer(**inputs, **extra, return_dict=False)[0]
    return FluxPipeline._unpack_latents(out, h * VAE_SCALE_FACTOR, w * VAE_SCALE_FACTOR, VAE_SCALE_FACTOR)


def fill_input(pixel_mask: torch.Tensor, image_latent: torch.Tensor, scaling_factor: float,
               shift_factor: float) -> ImageInput:
    """FLUX.1 Fill's image input at any latent size ``(h, w)``: ``FluxFillPipeline.prepare_mask_latents``'
    packed masked-image latent and 8x8-packed mask, concatenated as the pipeline does.

    The pipeline works at one size; for a step of another size the mask ``[B, 1, H, W]`` (pixels) is
    resized to ``(8h, 8w)`` and the raw VAE latent ``image_latent [B, 16, h', w']`` to ``(h, w)``, both
    bilinear (as ComfyUI's ``Flux.concat_cond``), then given to diffusers' code unchanged.
    """
    from types import SimpleNamespace

    from diffusers import FluxFillPipeline

    pipe = SimpleNamespace(vae_scale_factor=VAE_SCALE_FACTOR, _pack_latents=FluxFillPipeline._pack_latents,
                           vae=SimpleNamespace(config=SimpleNamespace(scaling_factor=scaling_factor,
                                                                      shift_factor=shift_factor)))

    def make(h: int, w: int) -> torch.Tensor:
        size = (h * VAE_SCALE_FACTOR, w * VAE_SCALE_FACTOR)
        mask = F.interpolate(pixel_mask, size=size, mode="bilinear")
        image = F.interpolate(image_latent, size=(h, w), mode="bilinear")
        mask, image = FluxFillPipeline.prepare_mask_latents(
            pipe, mask, image, image.shape[0], LATENT_CHANNELS, 1, *size, image.dtype, image.device, None)
        return torch.cat((image, mask), dim=-1)

    return make


@torch.no_grad()
def swd_latents(
    transformer,
    sigmas: Sequence[float],
    sizes: Sequence[tuple[int, int]],
    prompt_embeds: torch.Tensor,
    pooled: torch.Tensor,
    text_ids: torch.Tensor | None = None,
    *,
    batch: int,
    seed: int,
    guidance: float = 4.5,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    controlnet: Callable | None = None,
    image_input: ImageInput | None = None,
) -> torch.Tensor:
    """Text-to-image SwD sampling of a FLUX transformer, as upstream runs it.

    Args:
        transformer: diffusers ``FluxTransformer2DModel`` (LoRA applied, e.g. PEFT), on ``device``.
        sigmas: ``N + 1`` noise levels, ``sigmas[0]`` the start (1.0 for text-to-image).
        sizes: ``N`` latent sizes ``(h, w)`` (pixels / 8), each even; step ``i`` runs at ``sizes[i]``.
        prompt_embeds: T5 embeddings ``[B, L, joint_attention_dim]`` (``[1, L, D]`` is expanded).
        pooled: CLIP pooled embeddings ``[B, pooled_projection_dim]`` (``[1, P]`` is expanded).
        text_ids: ``[L, 3]`` text position ids; zeros (as ``FluxPipeline.encode_prompt``) if None.
        batch: batch size ``B``.
        seed: seed of the one CPU ``torch.Generator`` that draws every noise tensor.
        guidance: the distilled guidance value (``guidance_scale``; SwD FLUX: 4.5).
        device, dtype: where and in which dtype the transformer runs; noise is drawn in
            float32 on the CPU and moved.
        controlnet: `controlnet_hook` for a diffusers ``FluxControlNetModel``, called at every step;
            ``None``: no ControlNet.
        image_input: an extra model input made at each step's size (FLUX.1 Fill: ``fill_input``).

    Returns:
        The final latent ``[B, 16, *sizes[-1]]`` in the transformer's space (before
        ``latents / vae.config.scaling_factor + vae.config.shift_factor``), float32 on the CPU.
    """
    if len(sigmas) != len(sizes) + 1:
        raise ValueError(f"{len(sigmas)} sigmas for {len(sizes)} sizes: need one more sigma than sizes")
    if any(h % 2 or w % 2 for h, w in sizes):
        raise ValueError(f"latent sizes must be even (2x2 packing): {list(sizes)}")
    prompt_embeds = prompt_embeds.to(device, dtype).expand(batch, -1, -1)
    pooled = pooled.to(device, dtype).expand(batch, -1)
    if text_ids is None:
        text_ids = torch.zeros(prompt_embeds.shape[1], 3)
    text_ids = text_ids.to(device, dtype)
    generator = torch.Generator("cpu").manual_seed(seed)

    def noise(shape):
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device, dtype)

    x = sigmas[0] * noise((batch, LATENT_CHANNELS, *sizes[0]))
    for i, sigma in enumerate(sigmas[:-1]):
        x0 = x - sigma * velocity(transformer, x, float(sigma), prompt_embeds, pooled, text_ids, guidance,
                                     controlnet, image_input)
        if i + 1 < len(sizes):
            x0 = F.interpolate(x0, size=tuple(sizes[i + 1]), mode="bicubic")
        sigma_next = sigmas[i + 1]
        x = (1 - sigma_next) * x0 + sigma_next * noise(x0.shape) if sigma_next > 0 else x0
    return x.float().cpu()


# --------------------------------------------------------------------------- ControlNet

@torch.no_grad()
def instantx_hint(vae, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An InstantX (latent-input) ControlNet's hint for a latent of ``size``: ``image`` (``[B, 3, H, W]``
    in [0, 1]) resized to ``size * 8`` pixels as ComfyUI's ``ControlNet.get_control`` does it
    (``harness.reference.sd3.resize_hint``: centre crop, nearest-exact), encoded by the diffusers VAE
    (the distribution's mode: ComfyUI's encode takes the mean; ``FluxControlNetPipeline`` samples it)
    and normalised ``(latent - shift_factor) * scaling_factor`` as ``FluxControlNetPipeline`` does;
    unpacked ``[B, 16, h, w]``."""
    from .sd3 import resize_hint

    pixels = resize_hint(image, size[0] * VAE_SCALE_FACTOR, size[1] * VAE_SCALE_FACTOR)
    latent = vae.encode(pixels.to(vae.dtype) * 2 - 1).latent_dist.mode()
    return (latent - vae.config.shift_factor) * vae.config.scaling_factor


def xlabs_hint(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A pixel-input (XLabs-style) ControlNet's hint for a latent of ``size``: ``image`` resized to
    ``size * 8`` pixels (as `instantx_hint`) in [-1, 1], as ``FluxControlNetPipeline`` gives it to a
    ControlNet with an ``input_hint_block``."""
    from .sd3 import resize_hint

    return resize_hint(image, size[0] * VAE_SCALE_FACTOR, size[1] * VAE_SCALE_FACTOR) * 2 - 1


def controlnet_hook(controlnet, hint_for_size: Callable, conditioning_scale: float = 1.0) -> Callable:
    """The ``controlnet`` argument of `swd_latents` for a diffusers ``FluxControlNetModel``.

    ``hint_for_size((h, w))`` gives the hint for a latent of that size (`instantx_hint` or `xlabs_hint`,
    cached per size): the hint follows the latent at every scale, as ComfyUI rebuilds it. The ControlNet
    gets the transformer's own inputs (text, pooled, timestep, guidance, ids); a latent hint is packed
    into 2x2 tokens, a pixel hint goes to the ControlNet's ``input_hint_block``; its outputs reach the
    transformer as ``FluxControlNetPipeline`` passes them (``controlnet_blocks_repeat`` exactly when the
    ControlNet takes pixels).
    """
    from diffusers import FluxPipeline

    pixel_input = controlnet.input_hint_block is not None

    def run(inputs: dict, size: tuple[int, int]) -> dict:
        b = inputs["hidden_states"].shape[0]
        hint = hint_for_size(tuple(size)).to(inputs["hidden_states"])
        hint = hint.expand(b, -1, -1, -1)
        if not pixel_input:
            hint = FluxPipeline._pack_latents(hint, *hint.shape)
        blocks, singles = controlnet(controlnet_cond=hint, conditioning_scale=conditioning_scale, return_dict=False,
                                     **inputs)
        return {"controlnet_block_samples": blocks, "controlnet_single_block_samples": singles,
                "controlnet_blocks_repeat": pixel_input}
    return run
