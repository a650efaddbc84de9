"""Masked / area conditioning and inpainting at every scale of the scale-wise sampler.

ComfyUI prepares them once, for the latent it samples (the final size): ``process_conds``
resolves each conditioning's ``area`` to latent pixels ``(h, w, y, x)`` and resizes its
``mask`` (bilinear) to the latent, and ``CFGGuider.outer_sample`` resizes the LATENT's
``noise_mask`` to the ``denoise_mask`` that ``KSamplerX0Inpaint`` blends with its full-size
``latent_image`` and ``noise``. `sample_swd` runs every step at another size; `PerScale.at`
swaps, for one model call, each of those for its version at the step's size and restores
them afterwards:

* a conditioning mask: ComfyUI's own resize of it (``common_upscale``, bilinear), from the
  final-size mask;
* a conditioning area: `swd_core.scale_area` (its edges scaled and rounded half up);
* the denoise mask: the same bilinear resize; the inpainting ``latent_image``: resized with
  ``area``, as `sample_swd` resizes the start image; the inpainting ``noise``: the noise the
  sampler drew for this step (the draw that noised ``x``), so outside the mask ``x`` is the
  input image noised exactly as the sampler noised the rest;
* an inpainting model's image input (``c_concat``: an SDXL inpainting UNet's mask and masked
  image, FLUX Fill's image and packed mask), which ComfyUI's ``encode_model_conds`` makes once
  with the model's own ``concat_cond`` for the final-size noise: the same call for a noise of
  the step's size, with the conditioning's ``concat_latent_image`` / ``concat_mask``
  (InpaintModelConditioning; ``concat_cond`` resizes them itself) and the step's denoise mask
  and input image (the ones the blend uses at that step). A ``c_concat`` that call does not
  reproduce at the final size (another node's ``noise_concat``) and any other model input of
  the noise's shape are refused.

At the final size the entries are ComfyUI's own, untouched.
"""
from __future__ import annotations

import contextlib

import torch

import comfy.conds
import comfy.utils

from .. import swd_core


def resize_cond_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """A resolved conditioning mask ``[B, H, W]`` at ``size = (h, w)``, resized as ComfyUI's
    ``resolve_areas_and_cond_masks_multidim`` resizes it (``common_upscale``, bilinear)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mask.ndim < 4:
        return comfy.utils.common_upscale(mask.unsqueeze(1), size[1], size[0], "bilinear", "none").squeeze(1)
    return comfy.utils.common_upscale(mask, size[1], size[0], "bilinear", "none")


def _has_region(c: dict) -> bool:
    return c.get("mask") is not None or c.get("area") is not None


def check_conds(conds: dict, batch: int, node: str) -> None:
    """Refuse what cannot follow the latent's size, and what ComfyUI itself fails on with a bare error."""
    for name, entries in (conds or {}).items():
        for c in entries:
            mask = c.get("mask")
            if mask is not None and mask.shape[0] < batch and batch % mask.shape[0]:
                raise swd_core.SwDError(
                    f"{node}: the {name} conditioning has a batch of {mask.shape[0]} masks (ConditioningSetMask) "
                    f"but the latent has a batch of {batch}; ComfyUI repeats a batch of masks only a whole "
                    f"number of times: give one mask, or one per image"
                )
            area = c.get("area")
            if area is not None and len(area) != 4:
                raise swd_core.SwDError(f"{node}: the {name} conditioning's area {tuple(area)} is not an image "
                                        f"area (height, width, y, x); SwD samples image latents")


def concat_cond_at(base_model, c: dict, noise: torch.Tensor, latent_image, denoise_mask):
    """The model's image input (``concat_cond``) for conditioning ``c`` and a latent shaped like ``noise``.

    The keyword arguments are those ComfyUI's ``encode_model_conds`` gives ``extra_conds``: the
    conditioning's own entries, then the device, the noise, and the sampler's latent image and
    denoise mask where the conditioning has none of that name.
    """
    params = {**c, "device": noise.device, "noise": noise}
    params.setdefault("latent_image", latent_image)
    params.setdefault("denoise_mask", denoise_mask)
    return base_model.concat_cond(**params)


def remade_concat_conds(base_model, conds: dict, noise: torch.Tensor, latent_image, denoise_mask,
                        node: str) -> set:
    """``(name, index)`` of each conditioning whose ``c_concat`` the model's ``concat_cond`` remakes.

    Checked at the final size: ``concat_cond`` with ComfyUI's inputs must give the very tensor
    ComfyUI stored. Any other model input of the noise's shape (``CONDNoiseShape``) cannot follow
    the latent's size and is refused.
    """
    remade = set()
    for name, entries in (conds or {}).items():
        for i, c in enumerate(entries):
            for key, value in c.get("model_conds", {}).items():
                if not isinstance(value, comfy.conds.CONDNoiseShape):
                    continue
                ours = concat_cond_at(base_model, c, noise, latent_image, denoise_mask) if key == "c_concat" else None
                if ours is None or ours.shape != value.cond.shape or not torch.equal(ours.to(value.cond), value.cond):
                    raise swd_core.SwDError(
                        f"{node}: the {name} conditioning carries '{key}', an image the model takes at the final "
                        f"latent size that is not the model's own inpainting input (made by {type(base_model).__name__}"
                        f".concat_cond from InpaintModelConditioning's image and mask or the latent's noise mask); "
                        f"SwD changes the latent's size every step and can remake only that one: remove the node "
                        f"that sets '{key}', or inpaint with InpaintModelConditioning, SetLatentNoiseMask or "
                        f"VAEEncodeForInpaint"
                    )
                remade.add((name, i))
    return remade


class PerScale:
    """The per-scale masks, areas and inpainting inputs of one `sample_swd` run.

    ``model`` is the ``KSamplerX0Inpaint`` the sampler function gets (its ``inner_model`` is
    the guider, whose ``conds`` ComfyUI has resolved), ``extra_args`` the dict passed to every
    model call (its ``denoise_mask``), ``shape`` the final latent's shape.
    """

    def __init__(self, model, extra_args: dict, shape, node: str):
        self.model = model
        self.guider = model.inner_model
        self.base_model = self.guider.inner_model
        self.extra_args = extra_args
        self.shape = tuple(shape)
        self.final = tuple(shape[-2:])
        self.denoise_mask = extra_args.get("denoise_mask")
        self.latent_image = model.latent_image
        self.noise = None  # the sampler's latest draw
        conds = getattr(self.guider, "conds", None) or {}
        check_conds(conds, shape[0], node)
        self.regional = any(_has_region(c) for entries in conds.values() for c in entries)
        self.concat = remade_concat_conds(self.base_model, conds, self._noise_like(self.final), self.latent_image,
                                          self.denoise_mask, node)

    def _noise_like(self, size) -> torch.Tensor:
        """A latent of ``size``: ``concat_cond`` reads only the noise's shape, dtype and device."""
        return self.latent_image.new_zeros((*self.shape[:-2], *size))

    def recording(self, source: swd_core.sampling.NoiseSource) -> swd_core.sampling.NoiseSource:
        """``source``, keeping its latest draw: the noise of the step about to run (inpainting's too)."""
        def draw(shape):
            self.noise = source(shape)
            return self.noise
        return draw

    def _conds(self, size, latent_image, denoise_mask) -> dict:
        def scaled(name, i, c):
            if not _has_region(c) and (name, i) not in self.concat:
                return c
            c = c.copy()
            if c.get("mask") is not None:
                c["mask"] = resize_cond_mask(c["mask"], size)
            if c.get("area") is not None:
                c["area"] = swd_core.scale_area(c["area"], size, self.final)
            if (name, i) in self.concat:
                concat = concat_cond_at(self.base_model, self.guider.conds[name][i], self._noise_like(size),
                                        latent_image, denoise_mask)
                c["model_conds"] = {**c["model_conds"], "c_concat": comfy.conds.CONDNoiseShape(concat)}
            return c
        return {name: [scaled(name, i, c) for i, c in enumerate(entries)]
                for name, entries in self.guider.conds.items()}

    @contextlib.contextmanager
    def at(self, size):
        """Within: the guider's conds and the inpainting inputs are those of a latent of ``size``."""
        size = tuple(size)
        inpaint = self.denoise_mask is not None
        rescale = size != self.final and (self.regional or bool(self.concat))
        if not rescale and not inpaint:
            yield
            return
        saved = self.guider.conds, self.model.latent_image, self.model.noise
        try:
            denoise_mask, latent_image = self.denoise_mask, self.latent_image
            if size != self.final:
                h, w = size
                if inpaint:
                    denoise_mask = comfy.utils.common_upscale(self.denoise_mask, w, h, "bilinear", "disabled")
                if inpaint or self.concat:
                    latent_image = comfy.utils.common_upscale(self.latent_image, w, h, "area", "disabled")
            if rescale:
                self.guider.conds = self._conds(size, latent_image, denoise_mask)
            if inpaint:
                self.extra_args["denoise_mask"] = denoise_mask
                self.model.latent_image = latent_image
                self.model.noise = self.noise
            yield
        finally:
            self.guider.conds, self.model.latent_image, self.model.noise = saved
            if inpaint:
                self.extra_args["denoise_mask"] = self.denoise_mask
