"""Areas of regional conditioning at another latent size (host-independent, pure functions).

A host resolves a conditioning area once, for the final latent, as ComfyUI does: ``(h, w, y,
x)`` in latent pixels (``(*sizes, *offsets)`` in general, one pair per dimension). The
scale-wise sampler runs smaller latents first, so each step needs the same region at its own
size. `scale_area` maps it by its edges, so areas that touch at the final size still touch
(and do not overlap) at every scale.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def scale_area(area: Sequence[int], size: Sequence[int], final: Sequence[int]) -> tuple[int, ...]:
    """``area`` resolved for a latent of ``final`` size, mapped onto a latent of ``size``.

    ``area`` is ComfyUI's resolved form, sizes then offsets: ``(h, w, y, x)`` for an image
    latent ``final = (H, W)``. Each dimension's start and end (start + length, clipped to
    the latent as ComfyUI clips it when it crops) are scaled by ``size / final`` and rounded
    half up, the same rule for both edges; the result keeps at least one latent pixel and
    starts inside the latent. At ``size == final`` the area is returned unchanged.

    >>> scale_area((64, 32, 0, 96), (32, 32), (128, 128))
    (16, 8, 0, 24)
    >>> scale_area((8, 8, 0, 0), (3, 3), (128, 128))
    (1, 1, 0, 0)
    """
    dims = len(area) // 2
    if len(area) != 2 * dims or len(size) != dims or len(final) != dims:
        raise ValueError(f"area {tuple(area)} does not match sizes {tuple(size)} and {tuple(final)}")
    area = tuple(int(a) for a in area)
    if tuple(size) == tuple(final):
        return area
    lengths, starts = [], []
    for d in range(dims):
        start, length = area[dims + d], area[d]
        end = min(start + length, final[d])
        ratio = size[d] / final[d]
        new_start = min(_round_half_up(start * ratio), size[d] - 1)
        new_end = _round_half_up(end * ratio)
        starts.append(max(new_start, 0))
        lengths.append(max(new_end - new_start, 1))
    return (*lengths, *starts)
