"""The workflow graph that serialises to both formats ComfyUI reads: the frontend's UI JSON and the
API prompt. The family modules beside it build the shipped graphs from it.

UI format: the ComfyUI frontend's graph JSON, ``version`` 0.4, as frontend 1.32 writes it:
``widgets_values`` lists the node's widget inputs in /object_info's ``input_order``
(required, then optional); an INT seed input with ``control_after_generate`` is followed by
the frontend-only control value ("fixed"/"randomize"), and an ``image_upload`` combo
(LoadImage) by the upload button's value ("image"). Neither reaches the API format.
"""
from __future__ import annotations

import uuid

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

from harness.paths import ROOT

PACK_ID = "swd-scalewise"  # the Comfy Registry id (pyproject [tool.comfy] / project name)
COMFY_VERSION = "0.3.75"  # the ComfyUI the workflows are tested on
FRONTEND_VERSION = "1.32.9"


def pack_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        return tomllib.loads(text)["project"]["version"]
    for line in text.splitlines():  # pragma: no cover (3.10 only)
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("no version in pyproject.toml")


# --- node types: socket inputs, widgets and outputs in /object_info's order ----------------
# A widget is (api_name, ...); None as api_name marks a frontend-only value (seed control,
# upload button) that widgets_values holds but the API format does not.
CONTROL = None
NODE_TYPES: dict[str, dict] = {
    "CheckpointLoaderSimple": dict(inputs=[], widgets=["ckpt_name"],
                                   outputs=[("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "TripleCLIPLoader": dict(inputs=[], widgets=["clip_name1", "clip_name2", "clip_name3"],
                             outputs=[("CLIP", "CLIP")]),
    "CLIPLoader": dict(inputs=[], widgets=["clip_name", "type", "device"], outputs=[("CLIP", "CLIP")]),
    "DualCLIPLoader": dict(inputs=[], widgets=["clip_name1", "clip_name2", "type", "device"],
                           outputs=[("CLIP", "CLIP")]),
    "UNETLoader": dict(inputs=[], widgets=["unet_name", "weight_dtype"], outputs=[("MODEL", "MODEL")]),
    "VAELoader": dict(inputs=[], widgets=["vae_name"], outputs=[("VAE", "VAE")]),
    "UnetLoaderGGUF": dict(inputs=[], widgets=["unet_name"], outputs=[("MODEL", "MODEL")]),  # ComfyUI-GGUF
    "CheckpointSave": dict(inputs=[("model", "MODEL"), ("clip", "CLIP"), ("vae", "VAE")],
                           widgets=["filename_prefix"], outputs=[]),
    "KSampler": dict(inputs=[("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                             ("latent_image", "LATENT")],
                     widgets=["seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler", "denoise"],
                     outputs=[("LATENT", "LATENT")]),
    "FluxGuidance": dict(inputs=[("conditioning", "CONDITIONING")], widgets=["guidance"],
                         outputs=[("CONDITIONING", "CONDITIONING")]),
    "SwDLoraLoader": dict(inputs=[("model", "MODEL")], widgets=["lora_name", "strength_model"],
                          outputs=[("MODEL", "MODEL")], ours=True),
    "SwDSchedule": dict(inputs=[], widgets=["preset", "scales", "sigmas"],
                        outputs=[("schedule", "SWD_SCHEDULE"), ("sigmas", "SIGMAS")], ours=True),
    "SwDSampler": dict(inputs=[("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                               ("latent_image", "LATENT"), ("schedule", "SWD_SCHEDULE")],
                       widgets=["seed", CONTROL, "cfg", "upscale_method", "denoise"],
                       outputs=[("LATENT", "LATENT")], ours=True),
    "SamplerSwD": dict(inputs=[("schedule", "SWD_SCHEDULE")], widgets=["upscale_method"],
                       outputs=[("SAMPLER", "SAMPLER")], ours=True),
    "CLIPTextEncode": dict(inputs=[("clip", "CLIP")], widgets=["text"], outputs=[("CONDITIONING", "CONDITIONING")]),
    "EmptySD3LatentImage": dict(inputs=[], widgets=["width", "height", "batch_size"], outputs=[("LATENT", "LATENT")]),
    "EmptyLatentImage": dict(inputs=[], widgets=["width", "height", "batch_size"], outputs=[("LATENT", "LATENT")]),
    "VAEDecode": dict(inputs=[("samples", "LATENT"), ("vae", "VAE")], widgets=[], outputs=[("IMAGE", "IMAGE")]),
    "VAEEncode": dict(inputs=[("pixels", "IMAGE"), ("vae", "VAE")], widgets=[], outputs=[("LATENT", "LATENT")]),
    "SaveImage": dict(inputs=[("images", "IMAGE")], widgets=["filename_prefix"], outputs=[]),
    "LoadImage": dict(inputs=[], widgets=["image", None], outputs=[("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "RandomNoise": dict(inputs=[], widgets=["noise_seed", CONTROL], outputs=[("NOISE", "NOISE")]),
    "CFGGuider": dict(inputs=[("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
                      widgets=["cfg"], outputs=[("GUIDER", "GUIDER")]),
    "SamplerCustomAdvanced": dict(inputs=[("noise", "NOISE"), ("guider", "GUIDER"), ("sampler", "SAMPLER"),
                                          ("sigmas", "SIGMAS"), ("latent_image", "LATENT")],
                                  widgets=[], outputs=[("output", "LATENT"), ("denoised_output", "LATENT")]),
    "ControlNetLoader": dict(inputs=[], widgets=["control_net_name"], outputs=[("CONTROL_NET", "CONTROL_NET")]),
    "Canny": dict(inputs=[("image", "IMAGE")], widgets=["low_threshold", "high_threshold"],
                  outputs=[("IMAGE", "IMAGE")]),
    # the optional VAE is a socket after the required ones (the frontend lists optional inputs too)
    "ControlNetApplyAdvanced": dict(
        inputs=[("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("control_net", "CONTROL_NET"),
                ("image", "IMAGE"), ("vae", "VAE")],
        widgets=["strength", "start_percent", "end_percent"],
        outputs=[("positive", "CONDITIONING"), ("negative", "CONDITIONING")]),
    "VAEEncodeForInpaint": dict(inputs=[("pixels", "IMAGE"), ("vae", "VAE"), ("mask", "MASK")],
                                widgets=["grow_mask_by"], outputs=[("LATENT", "LATENT")]),
    # frontend-only (virtual): never in the API format
    "MarkdownNote": dict(inputs=[], widgets=[None], outputs=[], virtual=True),
}


class Graph:
    """A workflow graph that serialises to both the UI and the API format."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[dict] = []
        self.links: list[list] = []  # [id, origin_id, origin_slot, target_id, target_slot, type]

    def node(self, type_: str, title: str, pos, size, widgets=(), *, models=None, color=None) -> dict:
        spec = NODE_TYPES[type_]
        widgets = list(widgets)
        if len(widgets) != len(spec["widgets"]):
            raise ValueError(f"{type_} takes {len(spec['widgets'])} widget values, got {len(widgets)}")
        properties = {}
        if not spec.get("virtual"):
            properties["cnr_id"] = PACK_ID if spec.get("ours") else "comfy-core"
            properties["ver"] = pack_version() if spec.get("ours") else COMFY_VERSION
            properties["Node name for S&R"] = type_
        if models:
            properties["models"] = [{"name": n, "url": u, "directory": d} for n, u, d in models]
        node = {
            "id": len(self.nodes) + 1, "type": type_, "pos": list(pos), "size": list(size), "flags": {},
            "order": 0, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in spec["inputs"]],
            "outputs": [{"name": n, "type": t, "links": []} for n, t in spec["outputs"]],
            "title": title, "properties": properties, "widgets_values": widgets,
        }
        if color:
            node["color"], node["bgcolor"] = color
        self.nodes.append(node)
        return node

    def link(self, src: dict, output: str, dst: dict, input_name: str) -> None:
        slot = [o["name"] for o in src["outputs"]].index(output)
        target_slot = [i["name"] for i in dst["inputs"]].index(input_name)
        type_ = src["outputs"][slot]["type"]
        if dst["inputs"][target_slot]["type"] != type_:
            raise TypeError(f"{src['type']}.{output} ({type_}) -> {dst['type']}.{input_name}")
        link_id = len(self.links) + 1
        self.links.append([link_id, src["id"], slot, dst["id"], target_slot, type_])
        dst["inputs"][target_slot]["link"] = link_id
        src["outputs"][slot]["links"].append(link_id)

    def _execution_order(self) -> list[dict]:
        by_id = {n["id"]: n for n in self.nodes}
        done: dict[int, int] = {}

        def visit(n):
            if n["id"] in done:
                return
            for i in n["inputs"]:
                if i["link"] is not None:
                    visit(by_id[self.links[i["link"] - 1][1]])
            done[n["id"]] = len(done)

        for n in self.nodes:
            visit(n)
        return sorted(self.nodes, key=lambda n: done[n["id"]])

    def ui(self) -> dict:
        for order, node in enumerate(self._execution_order()):
            node["order"] = order
        for node in self.nodes:
            for out in node["outputs"]:
                if not out["links"]:
                    out["links"] = None
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PACK_ID}/workflows/{self.name}")),
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            # no "ds" (saved view): the frontend then fits the whole graph into the window
            "extra": {"frontendVersion": FRONTEND_VERSION},
            "version": 0.4,
        }

    def api(self) -> dict:
        prompt = {}
        for node in self._execution_order():
            spec = NODE_TYPES[node["type"]]
            if spec.get("virtual"):
                continue
            inputs = {name: value for name, value in zip(spec["widgets"], node["widgets_values"]) if name}
            for i in node["inputs"]:
                if i["link"] is not None:
                    _, origin, slot, *_ = self.links[i["link"] - 1]
                    inputs[i["name"]] = [str(origin), slot]
            prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"], "_meta": {"title": node["title"]}}
        return prompt


def renumber_links(g: Graph) -> None:
    """Give the remaining links ids 1..n and rewrite every reference to them."""
    new_ids = {link[0]: i + 1 for i, link in enumerate(g.links)}
    for link in g.links:
        link[0] = new_ids[link[0]]
    for node in g.nodes:
        for i in node["inputs"]:
            i["link"] = new_ids.get(i["link"]) if i["link"] is not None else None
        for o in node["outputs"]:
            o["links"] = [new_ids[x] for x in o["links"] if x in new_ids]
    # re-pack the node ids too (1..n), so that last_node_id stays tight
    id_map = {n["id"]: i + 1 for i, n in enumerate(g.nodes)}
    for n in g.nodes:
        n["id"] = id_map[n["id"]]
    for link in g.links:
        link[1], link[3] = id_map[link[1]], id_map[link[3]]


def remove_node(g: Graph, node: dict) -> None:
    """Take ``node`` and every link to or from it out of ``g``; the sockets it fed are left unconnected."""
    g.nodes.remove(node)
    g.links = [link for link in g.links if node["id"] not in (link[1], link[3])]
    renumber_links(g)
