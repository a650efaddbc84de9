"""The FLOP model of a transformer forward in image and text tokens, and the ratios it predicts.

One formula for every token-based architecture (SD3's MMDiT, FLUX's DiT): its coefficients
come from each family's module (``sd3.flop_model``), derived there once from the config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def image_tokens(h: int, w: int, patch: int = 2) -> int:
    """Image tokens of a ``h x w`` latent: ``(h/2) * (w/2)`` for SD3 (ComfyUI pads to the patch)."""
    return math.ceil(h / patch) * math.ceil(w / patch)


@dataclass(frozen=True)
class FlopModel:
    """Multiply-adds of one transformer forward (one sample) for ``N`` image and ``T`` text tokens.

    ``macs(N, T) = image_token_macs*N + text_token_macs*T + sample_macs
    + joint_attention_width*(N+T)^2 + image_attention_width*N^2``

    Linear layers grow with their stream's tokens; joint attention (QK^T and AV, ``2 (N+T)^2 d``
    per block) with the square of all tokens; MMDiT-X's extra image self-attention with
    ``N^2``. Norms, activations and softmax are left out (elementwise, a few % of the time).
    FLOPs are ``2 * macs``.
    """

    image_token_macs: int
    text_token_macs: int
    sample_macs: int
    joint_attention_width: int
    image_attention_width: int
    patch: int = 2

    def macs(self, n: int, t: int) -> int:
        return (self.image_token_macs * n + self.text_token_macs * t + self.sample_macs
                + self.joint_attention_width * (n + t) ** 2 + self.image_attention_width * n ** 2)

    def flops(self, size: tuple[int, int], text_tokens: int, batch: int = 1) -> int:
        return 2 * batch * self.macs(image_tokens(*size, self.patch), text_tokens)

    def attention_share(self, size, text_tokens: int) -> float:
        n, t = image_tokens(*size, self.patch), text_tokens
        attn = self.joint_attention_width * (n + t) ** 2 + self.image_attention_width * n ** 2
        return attn / self.macs(n, t)


def predicted_speedup(fm: FlopModel, sizes, steps_full: int, text_tokens: int) -> float:
    """FLOPs of ``steps_full`` forwards at the final size over the FLOPs of the scale-wise steps."""
    return steps_full * fm.flops(sizes[-1], text_tokens) / sum(fm.flops(s, text_tokens) for s in sizes)


def token_power_ratio(sizes, power: int, steps_full: int | None = None, text_tokens: int = 0,
                      patch: int = 2) -> float:
    """The same ratio for a cost of ``(N + text_tokens) ** power``: ``power=1`` linear layers,
    ``power=2`` attention. With ``text_tokens=0`` these are the image-token-only figures."""
    steps_full = len(sizes) if steps_full is None else steps_full
    cost = [(image_tokens(*s, patch) + text_tokens) ** power for s in sizes]
    return steps_full * cost[-1] / sum(cost)
