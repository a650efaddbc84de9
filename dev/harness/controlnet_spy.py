"""A recorder of what ComfyUI's ControlNets get, for the tests that prove the hint follows every scale."""
from __future__ import annotations


class ControlNetSpy:
    """Records every call of the ControlNet model class ``control_class`` (the latent's size, the shape of
    the hint it gets, and the hint by latent size) and every VAE encode's pixel size, until ``monkeypatch``
    undoes it. Class methods are wrapped, not instances: ComfyUI's apply nodes copy the ControlNet. Not
    ``ControlNet.get_control``'s attributes, which newer ComfyUI renamed (it keeps the last two hints by
    size in ``cond_hints``)."""

    def __init__(self, monkeypatch, control_class):
        import comfy.sd

        self.calls: list[tuple[tuple, tuple]] = []
        self.encodes: list[tuple] = []
        self.hints: dict = {}
        real_forward, real_encode = control_class.forward, comfy.sd.VAE.encode

        def forward(model, x, *args, **kw):
            hint = kw["hint"] if "hint" in kw else args[0]  # a keyword for the DiT ControlNets, positional for UNets
            self.calls.append((tuple(x.shape[-2:]), tuple(hint.shape)))
            self.hints[tuple(x.shape[-2:])] = hint.detach().clone()
            return real_forward(model, x, *args, **kw)

        def encode(vae, pixels):
            self.encodes.append(tuple(pixels.shape[1:3]))
            return real_encode(vae, pixels)

        monkeypatch.setattr(control_class, "forward", forward)
        monkeypatch.setattr(comfy.sd.VAE, "encode", encode)
