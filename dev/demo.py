"""Run a shipped workflow through a real, headless ComfyUI and print the PNG's path (last line).

    python3 scripts/dev.py demo                       # sets up, then runs this with the venv
    PYTHONPATH=dev .venv/bin/python -m demo [--workflow swd-sd3.5-large-6-steps] [--seed N]

Starts ComfyUI's own ``main.py`` (COMFYUI_PATH, default .host/ComfyUI) on 127.0.0.1 with
``.host/extra_model_paths.yaml`` (the stand-in models and this pack) and latent previews on
(``--preview-method auto``; the previews it receives are counted), queues the API-format
workflow ``workflows/api/<workflow>.json`` at its shipped size (1024x1024) over HTTP, follows
the progress over the websocket, and writes the PNG under ``.host/demo/output``.

Model files that ComfyUI's folders lack are replaced by the stand-ins (random weights, so
the picture is noise-like) with ``harness.standin_workflow``; where the real SD3.5 files
and the SwD LoRA are present, they are used.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness import paths, standin_workflow
from harness.comfy_server import ComfyServer, PromptRejected


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", default="swd-sd3.5-large-6-steps",
                        help="a name from workflows/api/ (without .json)")
    parser.add_argument("--seed", type=int, default=None, help="override the workflow's seed")
    parser.add_argument("--workdir", type=Path, default=paths.HOST / "demo",
                        help="ComfyUI's output/input/temp/user folders go here")
    parser.add_argument("--size", default=None, metavar="WxH",
                        help="override the empty latent's size (quick checks; the shipped size is 1024x1024)")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)

    path = paths.WORKFLOWS / "api" / f"{args.workflow}.json"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in path.parent.glob("*.json")))
        parser.error(f"no workflow {args.workflow!r}; shipped: {names}")
    shipped = json.loads(path.read_text())

    print(f"starting ComfyUI (log: {args.workdir / 'comfyui.log'}) ...", file=sys.stderr, flush=True)
    server = ComfyServer(args.workdir)
    try:
        prompt = standin_workflow.use_standins(shipped, server.object_info())
        for node_id, node in prompt.items():
            old = shipped[node_id]
            if node != old:
                print(f"  stand-in for missing files: node {node_id} {old['class_type']} "
                      f"{ {k: v for k, v in old['inputs'].items() if not isinstance(v, list)} } -> "
                      f"{node['class_type']} { {k: v for k, v in node['inputs'].items() if not isinstance(v, list)} }",
                      file=sys.stderr)
            if args.seed is not None and "seed" in node["inputs"] and not isinstance(node["inputs"]["seed"], list):
                node["inputs"]["seed"] = args.seed
            if args.seed is not None and node["class_type"] == "RandomNoise":
                node["inputs"]["noise_seed"] = args.seed
            if args.size and node["class_type"] == "EmptySD3LatentImage":
                width, height = (int(v) for v in args.size.lower().split("x"))
                node["inputs"].update(width=width, height=height)
        sizes = [(n["inputs"]["width"], n["inputs"]["height"]) for n in prompt.values()
                 if n["class_type"] == "EmptySD3LatentImage"]
        print(f"running {path.relative_to(paths.ROOT)} at {' '.join(f'{w}x{h}' for w, h in sizes)} ...",
              file=sys.stderr, flush=True)

        def on_message(msg):
            if msg["type"] == "binary_preview":
                previews.append(msg)
            if msg["type"] == "progress":
                d = msg["data"]
                title = prompt.get(str(d.get("node")), {}).get("_meta", {}).get("title", d.get("node"))
                print(f"  {title}: step {d['value']}/{d['max']}", file=sys.stderr, flush=True)

        previews: list[dict] = []
        start = time.time()
        try:
            record = server.run(prompt, timeout=args.timeout, on_message=on_message)
        except PromptRejected as e:
            print(f"ComfyUI rejected the workflow:\n{e}", file=sys.stderr)
            return 1
        if record["status"] != "success":
            errors = [m["data"] for m in record["messages"] if m["type"] == "execution_error"]
            print(json.dumps(errors, indent=1)[:4000], file=sys.stderr)
            print(server.log()[-4000:], file=sys.stderr)
            return 1
        images = [img for out in record["history"].get("outputs", {}).values() for img in out.get("images", [])
                  if img.get("type") == "output"]
        if not images:
            print("the workflow saved no image", file=sys.stderr)
            return 1
        png = (server.output_dir / images[0]["subfolder"] / images[0]["filename"]).resolve()
        print(f"done in {time.time() - start:.1f} s ({len(previews)} latent previews sent)", file=sys.stderr)
    finally:
        server.stop()
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
