"""ComfyUI's real frontend in headless Chromium (Debian's ``chromium``, driven by Playwright): open a page on
a running server, load a workflow, and measure what a person sees (zoom, node rectangles as rendered, widget
labels that fit). Used by ``tests/server/test_browser_layout.py`` and ``dev/screenshots.py``; works with
frontend 1.32.9 (ComfyUI 0.3.75) and 1.49.6 (ComfyUI 0.33).

``playwright install`` is not used: it downloads browsers, which these machines cannot.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: the test viewport, and a typical user's browser window (1920x1080 screen less the browser's own bars)
VIEWPORTS = {"test": (2400, 1300), "user": (1920, 960)}

# PrimeVue dialogs (.p-dialog, frontend 1.32.9) and the newer frontend's own ([role=dialog], 1.49.6)
DIALOGS_JS = """() => Array.from(document.querySelectorAll('.p-dialog, [role=dialog]'))
    .filter(d => d.getClientRects().length > 0).map(d => d.innerText)"""
LOAD_JS = """async (wf) => {
    await window.app.loadGraphData(wf);
    const p = await window.app.graphToPrompt();
    const nodes = window.app.graph.serialize().nodes;
    return {
        output: p.output,
        widgets: Object.fromEntries(nodes.map(n => [n.id, n.widgets_values ?? []])),
        types: Object.fromEntries(window.app.graph.nodes.map(n => [n.id, n.type])),
        errors: window.app.graph.nodes.filter(n => n.has_errors).map(n => n.id),
    };
}"""

# After app.loadGraphData the frontend fits the graph into the canvas (the files carry no saved view) and
# grows nodes to fit their widgets. This reads the result after two drawn frames: the zoom, the frontend's
# low-quality threshold (below it widget text is not drawn: LiteGraph's min_font_size_for_lod /
# (NODE_TEXT_SIZE * sqrt(devicePixelRatio))), each node's rectangle as drawn (title bar included), and
# for each widget whether its label and value fit the node's width side by side (else the frontend cuts
# the label, "lora_n…").
LAYOUT_JS = """async (wf) => {
    await window.app.loadGraphData(wf);
    const c = window.app.canvas;
    for (let i = 0; i < 3; i++) {
        c.setDirty(true, true);
        await new Promise(r => requestAnimationFrame(() => r()));
    }
    const lg = window.LiteGraph ?? {};
    const textSize = lg.NODE_TEXT_SIZE ?? 14;
    const threshold = c.min_font_size_for_lod / (textSize * Math.sqrt(window.devicePixelRatio || 1));
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${lg.NODE_SUBTEXT_SIZE ?? 12}px Arial`;
    const measure = (s) => ctx.measureText(String(s)).width;
    const nodes = window.app.graph.nodes.map(n => {
        const b = n.boundingRect ?? n.getBounding();
        const cut = [];
        for (const w of n.widgets ?? []) {
            if (!['combo', 'number', 'text', 'string'].includes(w.type)) continue;
            if (w.type === 'text' && w.options?.multiline) continue;
            let value = w.value;
            if (w.type === 'number' && typeof value === 'number') value = value.toFixed(w.options?.precision ?? 0);
            // the widget's margins (15 each side), the arrows of a combo or number (2 x 20) and a gap
            const need = measure(w.label ?? w.name) + measure(value) + 30 + 40 + 10;
            if (need > n.size[0]) cut.push({widget: w.name, need: Math.ceil(need), width: n.size[0]});
        }
        return {id: n.id, type: n.type, title: n.title, x: b[0], y: b[1], w: b[2], h: b[3], cut};
    });
    return {scale: c.ds.scale, threshold, low_quality: c.low_quality, nodes,
            canvas: [c.canvas.clientWidth, c.canvas.clientHeight]};
}"""


def overlaps(nodes: list[dict], gap: float = 0.0) -> list[tuple[str, str]]:
    """Pairs of node rectangles (``x, y, w, h``, as ``LAYOUT_JS`` reads them) that overlap."""
    found = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if (a["x"] < b["x"] + b["w"] + gap and b["x"] < a["x"] + a["w"] + gap
                    and a["y"] < b["y"] + b["h"] + gap and b["y"] < a["y"] + a["h"] + gap):
                found.append((f"{a['id']} {a['title']}", f"{b['id']} {b['title']}"))
    return found


RECTS_JS = """() => window.app.graph.nodes.map(n => {
    const b = n.boundingRect ?? n.getBounding();
    return {id: n.id, type: n.type, title: n.title, x: b[0], y: b[1], w: b[2], h: b[3]};
})"""


def node_rects(page) -> list[dict]:
    """Each node's rectangle as drawn now (title bar included), as ``overlaps`` takes them."""
    page.evaluate("() => window.app.canvas.setDirty(true, true)")
    page.wait_for_timeout(300)
    return page.evaluate(RECTS_JS)


def frontend_version(page) -> str:
    return page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? window.app?.ui?.settings?.version ?? '?'")


@contextlib.contextmanager
def open_page(url: str, viewport: tuple[int, int] = VIEWPORTS["test"]) -> Iterator:
    """A Chromium page on the ComfyUI at ``url``, the app ready; ``page.page_errors`` collects uncaught errors."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.page_errors = []
            page.on("pageerror", lambda e: page.page_errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("window.app && window.app.vueAppReady && window.app.graph", timeout=180_000)
            yield page
        finally:
            browser.close()


def dialogs(page) -> list[str]:
    return page.evaluate(DIALOGS_JS)


def close_dialogs(page) -> None:
    for _ in range(5):
        if not dialogs(page):
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(200)


def layout(page, workflow: dict) -> dict:
    """Load ``workflow`` and measure it (see ``LAYOUT_JS``)."""
    return page.evaluate(LAYOUT_JS, workflow)


def load(page, workflow: dict) -> dict:
    """Load ``workflow`` (UI format); its ``graphToPrompt`` output, widget values, node types and errors."""
    return page.evaluate(LOAD_JS, workflow)
