"""torch.compile with SwD: compile for every size at once instead of the first size, then again, keep
FLUX's position ids out of the graph, and never take a compiled graph from AOTAutograd's cache.

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

FLUX's ``process_img`` (patchify and position ids) runs outside the graph (`eager_position_ids`): its
``torch.linspace(..., steps=patch rows)`` would specialise the whole model's graph to every latent size,
one compilation per scale and aspect ratio until dynamo's recompile limit (8) leaves the model uncompiled.

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


@contextlib.contextmanager
def eager_position_ids(diffusion_model):
    """FLUX's ``process_img`` (patchify + position ids) run outside dynamo's graph until the context closes.

    Its ``torch.linspace(..., steps=patch rows)`` takes ``steps`` as an ``int``, so dynamo specialises the
    whole model's graph to each latent size it meets: with SwD's sizes that is a compilation per scale and
    aspect ratio, and after dynamo's recompile limit (8) the model runs uncompiled. Run eagerly, the ids
    reach the graph as a tensor of symbolic size; the cost is one graph break at the model's start.
    ``torch._dynamo.disable`` does nothing when the model is not compiled.
    """
    original = diffusion_model.__dict__.get("process_img")
    process_img = getattr(diffusion_model, "process_img", None)
    if not callable(process_img):  # not a FLUX-style model
        yield
        return
    diffusion_model.process_img = torch._dynamo.disable(process_img)
    try:
        yield
    finally:
        if original is None:
            del diffusion_model.process_img
        else:
            diffusion_model.process_img = original


def compiling(diffusion_model=None):
    """The context SwD's sampling loop runs ``diffusion_model`` in (see the module's docstring)."""
    stack = contextlib.ExitStack()
    without_aot_autograd_cache(stack)
    if ENABLED:
        import torch.fx.experimental._config as fx_config

        stack.enter_context(torch._dynamo.config.patch(assume_static_by_default=False))
        stack.enter_context(fx_config.patch(use_duck_shape=False))
        if diffusion_model is not None:
            stack.enter_context(eager_position_ids(diffusion_model))
    return stack
