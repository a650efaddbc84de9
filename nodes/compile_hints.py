"""torch.compile with SwD: compile for every size at once instead of the first size, then again.

SwD runs the model at a new latent size at every step. With ``torch.compile``'s default
(``dynamic=None``, what ComfyUI's ``TorchCompileModel`` uses) dynamo first compiles for the exact
first size, fails its guards at the second, and compiles every graph again with dynamic sizes
("automatic dynamic shapes"); a batch of another size costs a third round. Sampling inside
``compiling()`` tells dynamo to treat sizes as dynamic from the first compilation
(``assume_static_by_default=False``: what ``torch.compile(dynamic=True)`` does for its function), so
one compilation serves every scale and aspect ratio. Duck sizing is turned off too
(``use_duck_shape=False``): otherwise a square first image gives height and width one symbol and the
first non-square image compiles again. Batch 1 stays specialised (dynamo always specialises sizes 0
and 1), so the first batch of 2 or more compiles once more.

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
    import torch.fx.experimental._config as fx_config

    stack = contextlib.ExitStack()
    stack.enter_context(torch._dynamo.config.patch(assume_static_by_default=False))
    stack.enter_context(fx_config.patch(use_duck_shape=False))
    return stack
