"""Third-party step caches (TeaCache, MagCache, WaveSpeed's First Block Cache) are refused by name before
the first step, through ComfyUI's executor.

Each cache node is stood in by a minimal node that patches the MODEL exactly as the real node's
``apply``/``patch`` method does (read from each project's public source; none is vendored): the same
``transformer_options`` keys, and a ``model_function_wrapper`` made inside a method of a class of the
real node's name, so its ``__qualname__`` is the real one. The stand-in's wrapper records a call: a
refusal before the first step leaves it uncalled.
"""
import pytest

from harness import paths

CALLS: list[str] = []


def _wrapper(name):
    def unet_wrapper_function(model_function, kwargs):
        CALLS.append(name)
        return model_function(kwargs["input"], kwargs["timestep"], **kwargs["c"])
    return unet_wrapper_function


class _StandIn:
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}


class TeaCache(_StandIn):  # welltop-cn/ComfyUI-TeaCache, nodes.py TeaCache.apply_teacache
    def apply(self, model):
        return self.apply_teacache(model)

    def apply_teacache(self, model):
        new = model.clone()
        opts = new.model_options.setdefault("transformer_options", {})
        opts.update(rel_l1_thresh=0.4, max_skip_steps=3, coefficients=[498.65, -283.78, 55.86, -3.82, 0.26])

        def unet_wrapper_function(model_function, kwargs):
            return _wrapper("TeaCache")(model_function, kwargs)

        new.set_model_unet_function_wrapper(unet_wrapper_function)
        return (new,)


class WanVideoTeaCacheKJ(_StandIn):  # kijai/ComfyUI-KJNodes, model_optimization_nodes.py (Wan only)
    def apply(self, model):
        return self.patch_teacache(model)

    def patch_teacache(self, model):
        new = model.clone()
        opts = new.model_options.setdefault("transformer_options", {})
        opts.update(rel_l1_thresh=0.275, teacache_device="cpu", coefficients=[])

        def outer_wrapper(start_percent, end_percent):
            def unet_wrapper_function(model_function, kwargs):
                return _wrapper("WanVideoTeaCacheKJ")(model_function, kwargs)
            return unet_wrapper_function

        new.set_model_unet_function_wrapper(outer_wrapper(0.1, 1.0))
        return (new,)


class MagCache(_StandIn):  # Zehong-Ma/ComfyUI-MagCache, nodes.py MagCache.apply_magcache
    def apply(self, model):
        return self.apply_magcache(model)

    def apply_magcache(self, model):
        new = model.clone()
        opts = new.model_options.setdefault("transformer_options", {})
        opts.update(magcache_thresh=0.24, retention_ratio=0.2, mag_ratios=[1.0, 1.2], magcache_K=4)

        def unet_wrapper_function(model_function, kwargs):
            return _wrapper("MagCache")(model_function, kwargs)

        new.set_model_unet_function_wrapper(unet_wrapper_function)
        return (new,)


class ApplyFBCacheOnModel(_StandIn):  # chengzeyi/Comfy-WaveSpeed, fbcache_nodes.py ApplyFBCacheOnModel.patch
    FUNCTION = "patch"

    def patch(self, model):
        new = model.clone()

        def model_unet_function_wrapper(model_function, kwargs):  # no transformer_options keys: only this
            return _wrapper("ApplyFBCacheOnModel")(model_function, kwargs)

        new.set_model_unet_function_wrapper(model_unet_function_wrapper)
        return (new,)


STAND_INS = {"TeaCache": (TeaCache, "TeaCache", "ComfyUI-TeaCache"),
             "WanVideoTeaCacheKJ": (WanVideoTeaCacheKJ, "TeaCache", "ComfyUI-KJNodes"),
             "MagCache": (MagCache, "MagCache", "ComfyUI-MagCache"),
             "ApplyFBCacheOnModel": (ApplyFBCacheOnModel, "First Block Cache", "Comfy-WaveSpeed")}


def prompt(cache_node, sampler="SwDSampler"):
    """SD3.5 stand-in + the cache node + SwD Sampler (or SamplerSwD in SamplerCustomAdvanced) + SaveLatent."""
    p = {
        "model": {"class_type": "UNETLoader", "inputs": {"unet_name": paths.SD3_DIFFUSION_MODEL,
                                                         "weight_dtype": "default"}},
        "cache": {"class_type": cache_node, "inputs": {"model": ["model", 0]}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": paths.CLIP_L, "type": "sd3"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house by a lake", "clip": ["clip", 0]}},
        "sched": {"class_type": "SwDSchedule", "inputs": {"preset": "SD3.5 Large, 6 steps", "scales": "",
                                                          "sigmas": ""}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sampler", 0], "filename_prefix": "swd_cache"}},
    }
    if sampler == "SwDSampler":
        p["sampler"] = {"class_type": "SwDSampler", "inputs": {
            "model": ["cache", 0], "positive": ["pos", 0], "negative": ["pos", 0], "latent_image": ["latent", 0],
            "schedule": ["sched", 0], "seed": 1, "cfg": 1.0, "upscale_method": "bicubic"}}
    else:
        p.update({
            "swd": {"class_type": "SamplerSwD", "inputs": {"schedule": ["sched", 0], "upscale_method": "bicubic"}},
            "guider": {"class_type": "BasicGuider", "inputs": {"model": ["cache", 0], "conditioning": ["pos", 0]}},
            "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
            "sampler": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["swd", 0], "sigmas": ["sched", 1],
                "latent_image": ["latent", 0]}},
        })
    return p


@pytest.mark.parametrize("sampler", ["SwDSampler", "SamplerCustomAdvanced"])
@pytest.mark.parametrize("cache_node", list(STAND_INS))
def test_third_party_cache_is_refused_by_name_before_the_first_step(host, monkeypatch, cache_node, sampler):
    cls, name, pack = STAND_INS[cache_node]
    monkeypatch.setitem(host.nodes.NODE_CLASS_MAPPINGS, cache_node, cls)
    CALLS.clear()
    executor, messages = host.run_prompt(prompt(cache_node, sampler), f"cache-{cache_node}-{sampler}")
    assert not executor.success
    (error,) = [m[1] for m in messages if m[0] == "execution_error"]
    assert error["node_id"] == "sampler" and error["node_type"] == sampler
    node = "SwD Sampler" if sampler == "SwDSampler" else "SwD Sampler (SAMPLER)"
    assert error["exception_message"].startswith(
        f"{node}: the model has {name} ({cache_node} from {pack}), which reuses a step's output"), error
    assert error["exception_message"].rstrip().endswith(f"remove the {cache_node} node"), error
    assert CALLS == []  # refused before the model ran once


def test_the_stand_in_wrapper_runs_where_swd_is_not_involved(host, monkeypatch):
    """The stand-ins patch a model ComfyUI runs: with the stock KSampler the wrapper is called at every step
    (so the refusal above is SwD's, not a broken stand-in)."""
    monkeypatch.setitem(host.nodes.NODE_CLASS_MAPPINGS, "TeaCache", TeaCache)
    p = prompt("TeaCache")
    p["sampler"] = {"class_type": "KSampler", "inputs": {
        "model": ["cache", 0], "positive": ["pos", 0], "negative": ["pos", 0], "latent_image": ["latent", 0],
        "seed": 1, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}
    p["latent"]["inputs"].update(width=64, height=64)
    CALLS.clear()
    executor, messages = host.run_prompt(p, "cache-ksampler")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    assert CALLS == ["TeaCache", "TeaCache"]


def test_a_wrapper_of_another_kind_is_not_refused(host, monkeypatch):
    """Only the caches are refused: another model_function_wrapper (none of the table's names or keys) runs."""

    class OtherWrapper(_StandIn):
        def apply(self, model):
            new = model.clone()
            new.set_model_unet_function_wrapper(_wrapper("OtherWrapper"))
            new.model_options.setdefault("transformer_options", {})["rel_l1_thresh"] = 0.1  # one key alone
            return (new,)

    monkeypatch.setitem(host.nodes.NODE_CLASS_MAPPINGS, "OtherWrapper", OtherWrapper)
    p = prompt("OtherWrapper")
    p["latent"]["inputs"].update(width=64, height=64)
    CALLS.clear()
    executor, messages = host.run_prompt(p, "cache-other")
    assert executor.success, [m for m in messages if m[0] == "execution_error"]
    assert CALLS == ["OtherWrapper"] * 6
