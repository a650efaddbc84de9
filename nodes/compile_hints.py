"""torch.compile with SwD: compile for every size at once instead of the first size, then again, and
never take a compiled graph from AOTAutograd's cache.

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

AOTAutograd's cache is turned off while SwD samples (``torch._functorch.config.enable_autograd_cache``;
inductor's own FX graph cache, which holds the compiled kernels, stays on). Its key is dynamo's graph
and the inputs' symbolic shapes, not the guards dynamo added while tracing, and the guards it stores with
an entry can miss one: dynamo then recompiles a graph for a new size, traces the same graph, and gets
back the previous size's compilation. ComfyUI's FLUX does exactly that: ``torch.linspace``'s ``steps``
(an ``int`` in aten's schema) is specialised to the patch rows and columns of the size being traced, so
every size recompiles the graph holding ``Flux.process_img``, and with the cache the position ids of
the third scale were the second's stretched (FLUX latent off by 1e-1 relative, torch 2.14.1; issue #23,
``tests/host/test_torch_compile.py``). Without it the recompilation is traced afresh and right; the cost
is AOTAutograd's tracing, a fraction of a compilation. Where ``TORCHINDUCTOR_AUTOGRAD_CACHE`` forces the
cache on, every compile cache is turned off instead (``torch.compiler.config.force_disable_caches``).

Only compilations that happen during SwD sampling see it; without ``torch.compile`` dynamo is never
entered and nothing changes. A model compiled with an explicit ``dynamic=True/False`` keeps its own
choice of sizes (its compile context overrides this one); the cache is off for it too.
"""
import contextlib

import torch

#: turned off by the benchmark (``bench compile``) to measure the behaviour without the dynamic sizes
#: (the AOTAutograd cache stays off: that is a matter of correctness, not speed)
ENABLED = True


def without_aot_autograd_cache(stack: contextlib.ExitStack) -> None:
    """Turn AOTAutograd's cache off until ``stack`` closes (see the module's docstring)."""
    import torch._functorch.config as functorch_config

    off = {k: False for k in ("enable_autograd_cache", "enable_remote_autograd_cache") if hasattr(functorch_config, k)}
    if not off:  # a torch without AOTAutograd's cache
        return
    stack.enter_context(functorch_config.patch(off))
    if getattr(functorch_config, "enable_autograd_cache", False):  # forced on by TORCHINDUCTOR_AUTOGRAD_CACHE
        import torch.compiler.config as compiler_config

        stack.enter_context(compiler_config.patch(force_disable_caches=True))


def compiling():
    """The context SwD's sampling loop runs in (see the module's docstring)."""
    stack = contextlib.ExitStack()
    without_aot_autograd_cache(stack)
    if ENABLED:
        import torch.fx.experimental._config as fx_config

        stack.enter_context(torch._dynamo.config.patch(assume_static_by_default=False))
        stack.enter_context(fx_config.patch(use_duck_shape=False))
    return stack
