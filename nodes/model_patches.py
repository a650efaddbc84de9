"""Model patches that cannot follow a latent whose size changes every step: refused by name, before the
first step.

SwD changes the latent's size at every step. Patches that keep a tensor from one step and use it
at the next (a step cache's residual, APG's running average) then either can never act (a cache
compares this step's input with the previous one's, which always differs) or fail with a bare
"size mismatch" / "The size of tensor a (…) must match …" at the second or third scale.

How each is visible on the MODEL (``model_options``), read from each project's public source:

=====================  ==============================  =================================================
patch                  node (pack)                     what it leaves in ``model_options``
=====================  ==============================  =================================================
EasyCache / LazyCache  ``EasyCache``, ``LazyCache``    ``transformer_options["easycache"]`` (an object
                       (ComfyUI)                       with ``.name``)
APG with momentum      ``APG`` (ComfyUI)               a ``sampler_pre_cfg_function`` from
                                                       ``nodes_apg`` closing over ``momentum`` != 0
TeaCache               ``TeaCache``                    ``transformer_options["rel_l1_thresh"]`` (and
                       (welltop-cn/ComfyUI-TeaCache)   ``coefficients``, ``max_skip_steps``) and a
                                                       ``model_function_wrapper``
                                                       ``TeaCache.apply_teacache.<locals>…``
TeaCache (Wan)         ``WanVideoTeaCacheKJ``          ``transformer_options["rel_l1_thresh"]``,
                       (kijai/ComfyUI-KJNodes)         ``teacache_device``, wrapper
                                                       ``WanVideoTeaCacheKJ.patch_teacache…``
MagCache               ``MagCache``                    ``transformer_options["magcache_thresh"]``,
                       (Zehong-Ma/ComfyUI-MagCache)    ``mag_ratios``, ``magcache_K``; wrapper
                                                       ``MagCache.apply_magcache…``
First Block Cache      ``ApplyFBCacheOnModel``         only a ``model_function_wrapper``
                       (chengzeyi/Comfy-WaveSpeed)     ``ApplyFBCacheOnModel.patch.<locals>…``
=====================  ==============================  =================================================

Each third-party cache is recognised by its wrapper's ``__qualname__`` (the class and method that
installed it) or by its ``transformer_options`` keys, so a renamed node folder does not hide it.
"""
from __future__ import annotations

import dataclasses

from .. import swd_core


@dataclasses.dataclass(frozen=True)
class StepCache:
    """A third-party step cache: its name, the node that installs it, the pack, and how it shows."""

    name: str
    node: str
    pack: str
    wrapper_qualname: str = ""  # prefix of the model_function_wrapper's __qualname__
    option_keys: tuple[str, ...] = ()  # transformer_options keys only this cache sets

    def found(self, model_options: dict) -> bool:
        wrapper = model_options.get("model_function_wrapper")
        qualname = getattr(wrapper, "__qualname__", "") or ""
        if self.wrapper_qualname and qualname.startswith(self.wrapper_qualname):
            return True
        options = model_options.get("transformer_options", {})
        return bool(self.option_keys) and all(k in options for k in self.option_keys)


#: The third-party caches refused, in the order they are checked (the most specific marks first).
STEP_CACHES = (
    StepCache("TeaCache", "WanVideoTeaCacheKJ", "ComfyUI-KJNodes", "WanVideoTeaCacheKJ.",
              ("rel_l1_thresh", "teacache_device")),
    StepCache("TeaCache", "TeaCache", "ComfyUI-TeaCache", "TeaCache.", ("rel_l1_thresh", "coefficients")),
    StepCache("MagCache", "MagCache", "ComfyUI-MagCache", "MagCache.", ("magcache_thresh", "mag_ratios")),
    StepCache("First Block Cache", "ApplyFBCacheOnModel", "Comfy-WaveSpeed", "ApplyFBCacheOnModel."),
)


def _closure_value(fn, name: str):
    """The value of the free variable ``name`` of a closure ``fn`` (``None`` if it has none)."""
    code = getattr(fn, "__code__", None)
    if code is None or name not in code.co_freevars or not fn.__closure__:
        return None
    try:
        return fn.__closure__[code.co_freevars.index(name)].cell_contents
    except ValueError:  # an empty cell
        return None


def check_model_patches(model_options: dict, node: str) -> None:
    """Refuse host and third-party patches that cannot follow a latent whose size changes every step.

    The stock APG node with momentum keeps a running average of the guidance from the
    previous step and adds it to this step's: at the second scale the sizes differ and
    torch fails with a bare shape error. EasyCache/LazyCache compare each step's input with
    the previous step's: with a new size every step they can skip nothing, and on FLUX
    (ComfyUI 0.3.75) they fail with a shape error at the third scale. The third-party caches
    (`STEP_CACHES`) keep the previous step's residual and add it to a later step's.
    """
    cache = model_options.get("transformer_options", {}).get("easycache")
    if cache is not None:
        name = getattr(cache, "name", "EasyCache")
        raise swd_core.SwDError(
            f"{node}: the model has {name}, which reuses a step's output when the input changed little "
            f"since the previous step; SwD changes the latent's size every step, so {name} can skip "
            f"nothing (and fails on some models): remove the {name} node"
        )
    for known in STEP_CACHES:
        if known.found(model_options):
            raise swd_core.SwDError(
                f"{node}: the model has {known.name} ({known.node} from {known.pack}), which reuses a step's "
                f"output when the input changed little since the previous step; SwD changes the latent's "
                f"size every step, so {known.name} can skip nothing and its cached residual no longer fits "
                f"(a size-mismatch error at the next scale): remove the {known.node} node"
            )
    for fn in model_options.get("sampler_pre_cfg_function", []):
        momentum = _closure_value(fn, "momentum")
        if getattr(fn, "__module__", "").endswith("nodes_apg") and momentum:
            raise swd_core.SwDError(
                f"{node}: the model has APG with momentum {momentum}, which adds the guidance of the previous "
                f"step to this one's; SwD changes the latent's size every step, so they cannot be added: "
                f"set APG's momentum to 0"
            )
