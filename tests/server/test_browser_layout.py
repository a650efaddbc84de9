"""What a person sees of the shipped workflows in ComfyUI's real frontend (headless Chromium), beyond loading:

* each workflow opens (fit-to-view, no saved view) at a zoom at or above the frontend's low-quality threshold
  (below it widget text is not drawn), with no two node rectangles overlapping as RENDERED (the frontend
  grows nodes to fit their widgets) and no widget label cut, in the test viewport (2400x1300) and in a
  typical user's window (1920x960: a 1920x1080 screen less the browser's bars);
* node titles that name a node type are that type's display name;
* the template browser's card for each workflow shows its thumbnail (``workflows/<name>.jpg``, served by
  ComfyUI) and a description, the cards in the order of ``templates.TEMPLATES`` (the server lists them in
  the file system's order; ``web/swd.js`` sorts them); the served list and image URLs answer;
* the missing-models list names every model file of a workflow with its folder, text encoders included
  (1.32.9: the "Missing Models" dialog; 1.49.6: the errors panel behind "View details").

Runs on ComfyUI 0.3.75 (frontend 1.32.9) and, with ``COMFYUI_PATH=/work/host033/ComfyUI`` and that host's
Python, on ComfyUI 0.33 (frontend 1.49.6).
"""
from __future__ import annotations

import io
import time
import urllib.request

import pytest
from PIL import Image

from harness import browser
from harness.paths import ARTIFACTS, PACK_DIR_NAME
from harness.shipped_workflows import NAMES, ui
from workflow_builders import templates

CARD_ORDER_JS = """() => [...document.querySelectorAll('[role=dialog] [data-testid^="template-workflow-"]')]
    .map(e => e.dataset.testid.slice('template-workflow-'.length))"""
MISSING_JS = """() => {
    const visible = [...document.querySelectorAll('div, section, aside')]
        .filter(e => e.getClientRects().length > 0 && e.innerText && e.innerText.includes('Missing Models')
                     && e.innerText.includes('Download'));
    visible.sort((a, b) => a.innerText.length - b.innerText.length);
    return visible.length ? visible[0].innerText : '';
}"""


@pytest.fixture(scope="module")
def page(server):
    status, _ = server.post("/settings/Comfy.TutorialCompleted", True)  # no first-run template dialog
    assert status == 200
    ARTIFACTS.mkdir(exist_ok=True)
    with browser.open_page(server.url, browser.VIEWPORTS["user"]) as pg:
        yield pg


@pytest.mark.parametrize("viewport", sorted(browser.VIEWPORTS))
@pytest.mark.parametrize("name", NAMES)
def test_workflow_opens_readable(page, name, viewport):
    width, height = browser.VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    seen = browser.layout(page, ui(name))
    browser.close_dialogs(page)
    assert seen["canvas"] == [width, height]
    assert seen["scale"] >= seen["threshold"] and not seen["low_quality"], (
        f"opens at zoom {seen['scale']:.3f}, below the text threshold {seen['threshold']:.3f} at {width}x{height}")
    assert browser.overlaps(seen["nodes"]) == []
    assert [(n["title"], n["cut"]) for n in seen["nodes"] if n["cut"]] == []
    assert page.page_errors == []


def test_the_checks_can_fail(page):
    """An overlapping node, a too-narrow loader and a graph too wide to read are caught."""
    workflow = ui("swd-sd3.5-large-6-steps")
    nodes = {n["type"]: n for n in workflow["nodes"]}
    nodes["VAEDecode"]["pos"] = list(nodes["SaveImage"]["pos"])
    nodes["SwDLoraLoader"]["size"][0] = 300
    nodes["MarkdownNote"]["pos"][0] = -3000
    page.set_viewport_size({"width": 1920, "height": 960})
    seen = browser.layout(page, workflow)
    browser.close_dialogs(page)
    assert seen["low_quality"] and seen["scale"] < seen["threshold"]
    assert any("VAE Decode" in a + b and "Save Image" in a + b for a, b in browser.overlaps(seen["nodes"]))
    assert [c["widget"] for n in seen["nodes"] if n["type"] == "SwDLoraLoader" for c in n["cut"]] == ["lora_name"]


def test_titles_are_display_names(server):
    """A node titled with a node type's id shows that type's display name (``SamplerSwD`` is "SwD Sampler
    (SAMPLER)"); the pack's own nodes carry their display names."""
    info = server.object_info()
    ours = {"SwDLoraLoader", "SwDSchedule", "SwDSampler", "SamplerSwD"}
    wrong = []
    for name in NAMES:
        for node in ui(name)["nodes"]:
            if node["type"] not in info:  # frontend-only (MarkdownNote)
                continue
            display = info[node["type"]]["display_name"] or node["type"]  # none given: the frontend shows the id
            if (node["title"] in info or node["type"] in ours) and node["title"] != display:
                wrong.append((name, node["type"], node["title"], display))
    assert wrong == [], wrong


def test_templates_are_served_with_thumbnails(server):
    listed = server.get("/workflow_templates")[PACK_DIR_NAME]
    assert sorted(listed) == NAMES
    assert [name for name, _, _ in templates.TEMPLATES][0] == "swd-sd3.5-large-6-steps"
    for name in NAMES:
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK_DIR_NAME}/{name}.jpg") as r:
            assert r.status == 200 and r.headers.get_content_type() == "image/jpeg", name
            body = r.read()
        assert 2_000 < len(body) < 40_000, (name, len(body))
        assert Image.open(io.BytesIO(body)).size == (templates.SIZE, templates.SIZE)


def test_template_cards_show_thumbnail_and_description(page):
    page.set_viewport_size({"width": 1920, "height": 960})
    browser.close_dialogs(page)
    page.get_by_text("Templates", exact=True).first.click()
    page.get_by_role("dialog").get_by_text(PACK_DIR_NAME, exact=True).first.click()
    page.locator(f'[data-testid="template-workflow-{NAMES[0]}"]').wait_for(state="attached", timeout=30_000)
    order = page.evaluate(CARD_ORDER_JS)
    page.wait_for_timeout(500)  # the first thumbnails drawn
    page.screenshot(path=str(ARTIFACTS / "browser-template-cards-first.png"))
    shown = {}
    for name in NAMES:
        card = page.locator(f'[data-testid="template-workflow-{name}"]')
        card.scroll_into_view_if_needed(timeout=30_000)
        image = card.locator("img").first
        image.wait_for(timeout=30_000)
        page.wait_for_function("(i) => i.complete && i.naturalWidth > 0", arg=image.element_handle(), timeout=30_000)
        size = image.evaluate("(i) => [i.naturalWidth, i.naturalHeight]")
        # 1.32.9 writes a description (the file name again) under the title; 1.49.6 writes none for any
        # template: the one-line description is drawn in the thumbnail, the same in both
        text = card.locator("p")
        described = bool(text.first.inner_text().strip()) if text.count() else None
        shown[name] = (size, card.locator("h3").first.inner_text().strip(), described in (True, None))
    page.screenshot(path=str(ARTIFACTS / "browser-template-cards.png"))
    browser.close_dialogs(page)
    assert shown == {name: ([templates.SIZE, templates.SIZE], name, True) for name in NAMES}
    assert order == [name for name, _, _ in templates.TEMPLATES]
    assert page.page_errors == []


def missing_models_text(page, expect: str, timeout=15.0) -> str:
    """The missing-models list as shown (once it names ``expect``): 1.32.9's dialog, or 1.49.6's errors panel
    ("View details")."""
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = page.evaluate(MISSING_JS)
        if expect in text:
            return text
        details = page.get_by_text("View details", exact=True)
        if details.count() and details.first.is_visible():
            details.first.click()
        page.wait_for_timeout(250)
    return text


@pytest.mark.parametrize("name", ["swd-sd3.5-large-6-steps", "swd-sd3.5-large-6-steps-split-files",
                                  "swd-flux1-dev-4-steps", "swd-sdxl-4-steps-controlnet"])
def test_missing_models_lists_every_file_with_its_folder(server, page, name):
    page.set_viewport_size({"width": 1920, "height": 960})
    page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")  # no restored workflow, no old list
    page.reload()
    page.wait_for_function("window.app && window.app.vueAppReady && window.app.graph", timeout=180_000)
    browser.close_dialogs(page)
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", ui(name))
    models = [m for n in ui(name)["nodes"] for m in n["properties"].get("models", [])]
    text = missing_models_text(page, models[-1]["name"])
    page.screenshot(path=str(ARTIFACTS / f"browser-missing-models-{name}.png"))
    browser.close_dialogs(page)
    loaders = {n["type"] for n in ui(name)["nodes"] if n["properties"].get("models")}
    assert loaders & {"TripleCLIPLoader", "DualCLIPLoader", "CheckpointLoaderSimple"}, "a text encoder is loaded"
    absent = [(m["directory"], m["name"]) for m in models
              if not (f"{m['directory']} / {m['name']}" in text or f"{m['name']}\n{m['directory']}" in text)]
    assert text and absent == [], text
