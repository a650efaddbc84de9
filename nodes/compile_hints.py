"""torch.compile with SwD: compile for every size at once instead of the first size, then again.

SwD runs the model at a new latent size at every step. With ``torch.compile``'s default
(``dynamic=None``, what ComfyUI's ``TorchCompileModel`` uses) dynamo first compiles for the exact
first size, fails its guards at the second, and compiles every graph again with dynamic sizes
("automatic dynamic shapes"); a batch of another size costs a third round. Sampling inside
``compiling()`` tells dynamo to treat sizes as dynamic from the first compilation
(``assume_static_by_default=False``: what ``torch.compile(dynamic=True)`` does for its function), so
one compilation serves every scale, aspect ratio and batch size.

Only compilations that happen during SwD sampling see it; without ``torch.compile`` dynamo is never
entered and nothing changes. A model compiled with an explicit ``dynamic=True/False`` keeps its own
choice (its compile context overrides this one).
"""
import contextlib

import torch

#: turned off by the benchmark (``bench compile``) to measure the behaviour without it
ENABLED = True


def compiling():
    """The context SwD's sampling loop runs in (see the module's docstring)."""
    if not ENABLED:
        return contextlib.nullcontext()
    return torch._dynamo.config.patch(assume_static_by_default=False)
