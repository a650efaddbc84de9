"""Screenshots of every shipped workflow in ComfyUI's real frontend, for a person to look at (not a test).

    python3 scripts/dev.py screenshots                      # every workflow, 1920x960 window
    python3 scripts/dev.py screenshots --only swd-sdxl-4-steps --viewport 2400x1300 --no-run

Starts a ComfyUI server on the stand-in models (latent previews on), opens the frontend in headless
Chromium and, for each workflow: loads it as shipped and writes ``<name>-1-missing-models.png`` (the list
the frontend shows: the real files are not here) and, that closed, ``<name>-2-loaded.png``; then loads it
with the stand-ins, runs it at 256x256 (the stand-ins draw noise) and writes ``<name>-3-ran.png`` once the
run is done (minutes per workflow on a CPU: ``--only`` picks some). Output:
``test-artifacts/screenshots/<frontend version>/`` (not committed). With ``COMFYUI_PATH`` and that host's
Python, the same on another ComfyUI (e.g. 0.33 with frontend 1.49.6).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from harness import browser, standin_workflow
from harness.comfy_server import ComfyServer
from harness.paths import ARTIFACTS, COMFYUI
from harness.shipped_workflows import NAMES, ui

OUT = ARTIFACTS / "screenshots"
SIZE = 256
LATENTS = ("EmptySD3LatentImage", "EmptyLatentImage")


def prepare(workflow: dict, seed: int) -> dict:
    """Stand-in models, a 256x256 latent, a fresh seed (the server would otherwise answer from its cache)."""
    for node in workflow["nodes"]:
        if node["type"] in LATENTS:
            node["widgets_values"][0] = node["widgets_values"][1] = SIZE
        if node["type"] in ("SwDSampler", "KSampler", "RandomNoise"):
            node["widgets_values"][0] = seed
    return workflow


def run_in_page(page, server: ComfyServer, timeout: float = 900) -> str:
    """Queue the loaded graph from the page; wait until the server has finished it. Returns its status."""
    with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as sent:
        page.evaluate("async () => { await app.queuePrompt(0); }")
    if sent.value.status != 200:
        return f"refused: {sent.value.text()[:300]}"
    prompt_id = sent.value.json()["prompt_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = server.get(f"/history/{prompt_id}").get(prompt_id)
        if history and history.get("status", {}).get("completed") is not None:
            page.wait_for_timeout(1500)  # the frontend draws the image
            return history["status"].get("status_str", "?")
        time.sleep(1)
    return "timed out"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 scripts/dev.py screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=NAMES, metavar="NAME", help="these workflows only")
    parser.add_argument("--viewport", default="1920x960", help="the browser window, WIDTHxHEIGHT")
    parser.add_argument("--no-run", action="store_true", help="only the screenshot after loading")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.viewport.split("x"))
    workdir = Path(tempfile.mkdtemp(prefix="swd-screenshots-"))
    server = ComfyServer(workdir, extra_args=["--preview-method", "latent2rgb"])
    try:
        example = COMFYUI / "input" / "example.png"
        start = Image.open(example).convert("RGB") if example.exists() else Image.new("RGB", (SIZE, SIZE), "gray")
        start.resize((SIZE, SIZE)).save(server.input_dir / "example.png")
        server.post("/settings/Comfy.TutorialCompleted", True)
        info = server.object_info()
        with browser.open_page(server.url, (width, height)) as page:
            version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? 'unknown'")
            out = OUT / version
            out.mkdir(parents=True, exist_ok=True)
            print(f"frontend {version}, window {width}x{height} -> {out}")
            for i, name in enumerate(args.only):
                seen = browser.layout(page, ui(name))
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / f"{name}-1-missing-models.png"))
                browser.close_dialogs(page)
                page.screenshot(path=str(out / f"{name}-2-loaded.png"))
                line = f"{name}: zoom {seen['scale']:.2f} (text from {seen['threshold']:.2f})"
                if not args.no_run:
                    browser.layout(page, prepare(standin_workflow.use_standins_ui(ui(name), info), 1000 + i))
                    status = run_in_page(page, server)
                    page.screenshot(path=str(out / f"{name}-3-ran.png"))
                    line += f", run: {status}"
                print(line, flush=True)
            if page.page_errors:
                print("page errors:", *page.page_errors, sep="\n  ", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
