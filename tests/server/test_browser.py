"""The shipped workflows in ComfyUI's real frontend: headless Chromium (Debian's `chromium`)
driven by Playwright, on the frontend the test server serves.

* each shipped workflow loads without a missing-node or error dialog, the frontend's
  ``app.graphToPrompt()`` gives exactly its API file, and re-serialising the graph gives
  back the file's widget values (so the files' widget order is the frontend's; SwD Schedule's
  fields hold the preset's own values, which web/swd.js shows, so it changes nothing);
* the model files a workflow names are announced as missing (they are missing here): frontend 1.32.9
  (ComfyUI 0.3.75) in its "missing models" dialog with their download links, 1.49.6 (ComfyUI 0.33.0)
  as errors on the nodes that name them and in its errors panel; none once the stand-ins are in;
* one workflow is queued from the browser and its image appears on the SaveImage node;
  a screenshot is kept in test-artifacts/;
* a workflow with an unknown node type does raise the missing-node dialog, so the checks
  above can fail.

Chromium: ``apt-get install -y chromium`` (.ci/run does it). ``playwright install`` is not
used: it downloads browsers, which these machines cannot.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from harness import standin_workflow, workflow_api
from harness.browser import CHROMIUM, CHROMIUM_ARGS, close_dialogs, dialogs, load, node_rects, overlaps
from harness.paths import ARTIFACTS, comfyui_version_info
from harness.shipped_workflows import NAMES, api, ui

QUEUED = "swd-sd3.5-large-6-steps-sampler-custom-advanced"
SIZE = 256  # the queued run's size (the full-size run is in test_workflows.py)


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    status, _ = server.post("/settings/Comfy.TutorialCompleted", True)  # no first-run template dialog
    assert status == 200
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 2400, "height": 1300})
        pg.page_errors = []  # uncaught exceptions in the page
        pg.on("pageerror", lambda e: pg.page_errors.append(str(e)))
        pg.goto(server.url)
        pg.wait_for_function("window.app && window.app.vueAppReady && window.app.graph", timeout=180_000)
        assert dialogs(pg) == [], "a dialog is open before any workflow was loaded"
        try:
            yield pg
        finally:
            browser.close()


def wait_dialogs(pg, expect_some: bool, timeout=10.0) -> list[str]:
    """The open dialogs: once one shows (``expect_some``), else after the frontend had time to show one."""
    if not expect_some:
        pg.wait_for_timeout(1500)
        return dialogs(pg)
    deadline = time.time() + timeout
    while not dialogs(pg) and time.time() < deadline:
        pg.wait_for_timeout(100)
    return dialogs(pg)


def frontend_version(pg) -> tuple[int, ...]:
    return tuple(int(x) for x in pg.evaluate("window.__COMFYUI_FRONTEND_VERSION__").split(".")[:3])


def missing_models_are_node_errors(pg) -> bool:
    """How the frontend tells the user about a workflow's missing model files: 1.32.9 (ComfyUI 0.3.75)
    opens a "Missing Models" dialog with download links; 1.49.6 (ComfyUI 0.33.0) marks the nodes that
    name them as errors and lists the files in its errors panel ("Missing Models", a Download button each)."""
    return frontend_version(pg) >= (1, 49)


def unlisted_files(workflow: dict, info: dict) -> set[str]:
    """Ids of the nodes with a file widget (a combo) whose value the server does not offer (1.49.6 marks them)."""
    out = set()
    for node in workflow["nodes"]:
        if node["type"] not in info:
            continue
        for slot, value in zip(workflow_api.widget_layout(info[node["type"]]), node["widgets_values"]):
            if slot["type"] == "COMBO" and isinstance(value, str) and value.endswith((".safetensors", ".png")) \
                    and value not in (slot["choices"] or []):
                out.add(str(node["id"]))
    return out


def errors_panel(pg, section: str) -> str:
    """The text of the errors panel (1.49: opened from the "N errors found" toast's "View details") once
    it shows ``section`` ("Missing Models", "Missing Node Packs")."""
    pg.get_by_text("View details", exact=True).first.click()
    pg.get_by_text(section, exact=True).first.wait_for(timeout=15_000)
    return pg.evaluate("""(section) => Array.from(document.querySelectorAll('div'))
        .filter(d => d.getClientRects().length > 0 && /Errors? detected/.test(d.innerText)
                     && d.innerText.includes(section))
        .map(d => d.innerText).sort((a, b) => a.length - b.length)[0]""", section)


@pytest.mark.parametrize("name", NAMES)
def test_frontend_loads_the_workflow_and_gives_its_api_file(server, page, name):
    info = server.object_info()
    shipped = ui(name)
    # as shipped: the frontend's own conversion equals the API file
    loaded = load(page, shipped)
    assert loaded["output"] == api(name)
    for node in shipped["nodes"]:
        assert loaded["types"][str(node["id"])] == node["type"]
        assert loaded["widgets"][str(node["id"])] == node["widgets_values"], f"node {node['id']} ({node['type']})"
    # its model files are missing here: the frontend lists them (see missing_models_are_node_errors)
    have = standin_workflow.available_models(info)
    models = [m for n in shipped["nodes"] for m in n["properties"].get("models", [])]
    missing = [m["name"] for m in models if m["name"] not in have[m["directory"]]]
    naming_missing = {str(n["id"]) for n in shipped["nodes"]
                      if any(m["name"] in missing for m in n["properties"].get("models", []))}
    if missing_models_are_node_errors(page):
        # the nodes naming a missing model, and any other file the server does not list (the input image)
        assert set(map(str, loaded["errors"])) == naming_missing | unlisted_files(shipped, info)
        assert wait_dialogs(page, expect_some=False) == []
        if missing:
            text = errors_panel(page, "Missing Models")
            page.screenshot(path=str(ARTIFACTS / f"browser-missing-models-{name}.png"))
            assert "Missing Models" in text and "missing nodes" not in text.lower(), text
            assert all(f"{m['name']}\n{m['directory']}" in text for m in models if m["name"] in missing), text
    else:
        assert loaded["errors"] == []
        shown = wait_dialogs(page, expect_some=bool(missing))
        text = "\n".join(shown)
        assert "missing nodes" not in text.lower()
        if missing:
            assert "Missing Models" in text and all(f"{m['directory']} / {m['name']}" in text
                                                    for m in models if m["name"] in missing), text
        else:
            assert shown == []
        close_dialogs(page)
    # with the stand-ins swapped in: no dialog at all, and the prompt is use_standins(API file)
    standins = standin_workflow.use_standins_ui(shipped, info)
    loaded = load(page, standins)
    assert wait_dialogs(page, expect_some=False) == []
    if missing_models_are_node_errors(page):  # 1.49.6 also marks a LoadImage whose image is not uploaded here
        unlisted = unlisted_files(standins, info)
        assert {n["type"] for n in standins["nodes"] if str(n["id"]) in unlisted} <= {"LoadImage"}
        assert set(map(str, loaded["errors"])) == unlisted
    else:
        assert loaded["errors"] == []
    assert loaded["output"] == standin_workflow.use_standins(api(name), info)
    assert page.page_errors == []


def test_frontend_queues_the_workflow_and_shows_the_image(server, page):
    info = server.object_info()
    workflow = standin_workflow.use_standins_ui(ui(QUEUED), info)
    load(page, workflow)
    assert wait_dialogs(page, expect_some=False) == []
    seed = 20250 + int(time.time()) % 1000  # a fresh seed: the server must not answer from its cache
    page.evaluate("""([size, seed]) => {
        for (const n of app.graph.nodes) {
            if (n.type === 'EmptySD3LatentImage') {
                n.widgets.find(w => w.name === 'width').value = size;
                n.widgets.find(w => w.name === 'height').value = size;
            }
            if (n.type === 'RandomNoise') n.widgets.find(w => w.name === 'noise_seed').value = seed;
        }
    }""", [SIZE, seed])
    with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as sent:
        page.evaluate("async () => { await app.queuePrompt(0); }")
    assert sent.value.status == 200, sent.value.text()
    prompt_id = sent.value.json()["prompt_id"]
    save_id = next(n["id"] for n in workflow["nodes"] if n["type"] == "SaveImage")
    shown = f"(app.graph.getNodeById({save_id}).imgs || []).filter(i => i.naturalWidth > 0).length > 0"
    page.wait_for_function(shown, timeout=300_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"browser-{QUEUED}.png"))
    # the message boxes and the preview the run added (nodes grow to fit them) overlap no other node
    assert overlaps(node_rects(page)) == []
    src, width, height = page.evaluate(
        f"(() => {{ const i = app.graph.getNodeById({save_id}).imgs[0]; "
        f"return [i.src, i.naturalWidth, i.naturalHeight]; }})()")
    assert (width, height) == (SIZE, SIZE)
    # the server ran what the browser sent: the API file with stand-ins, size and seed changed
    history = server.history(prompt_id)
    assert history["status"]["status_str"] == "success"
    expected = standin_workflow.use_standins(api(QUEUED), info)
    for node in expected.values():
        if node["class_type"] == "EmptySD3LatentImage":
            node["inputs"].update(width=SIZE, height=SIZE)
        if node["class_type"] == "RandomNoise":
            node["inputs"]["noise_seed"] = seed
    assert history["prompt"][2] == expected
    image = history["outputs"][str(save_id)]["images"][0]
    assert f"filename={image['filename']}" in src
    assert (Path(server.output_dir) / image["subfolder"] / image["filename"]).is_file()
    assert page.page_errors == []


def test_frontend_reports_a_missing_node_type(server, page):
    """The checks above can fail: an unknown node type raises the missing-node dialog."""
    workflow = standin_workflow.use_standins_ui(ui("swd-sd3.5-large-6-steps"), server.object_info())
    renamed = next(n for n in workflow["nodes"] if n["type"] == "SwDSampler")
    renamed["type"] = "SwDSamplerNotInstalled"
    loaded = load(page, workflow)
    if missing_models_are_node_errors(page):  # 1.49.6: the errors panel names the node's pack, not its type
        assert wait_dialogs(page, expect_some=False) == []
        text = errors_panel(page, "Missing Node Packs")
        page.screenshot(path=str(ARTIFACTS / "browser-missing-node.png"))
        assert "Missing Node Packs" in text and renamed["properties"]["cnr_id"] in text, text
    else:  # 1.32.9: the missing-nodes dialog names the type
        shown = wait_dialogs(page, expect_some=True)
        page.screenshot(path=str(ARTIFACTS / "browser-missing-node.png"))
        assert any("missing nodes" in d.lower() and "SwDSamplerNotInstalled" in d for d in shown), shown
    assert list(map(str, loaded["errors"])) == [str(renamed["id"])]
    assert loaded["output"][str(renamed["id"])]["class_type"] is None
    status, response = server.queue(loaded["output"])  # and the server refuses such a prompt
    assert status == 400, response
    if comfyui_version_info() >= (0, 33):  # 0.33.0 names the node by its title and says what may be missing
        assert response["error"]["type"] == "missing_node_type" and "not found" in response["error"]["message"]
        assert response["error"]["extra_info"]["node_id"] == str(renamed["id"]), response
    else:
        assert response["error"]["type"] == "invalid_prompt" and "does not exist" in response["error"]["message"]
    close_dialogs(page)
    # and the same workflow with the real type loads cleanly in the same page
    renamed["type"] = "SwDSampler"
    assert load(page, workflow)["errors"] == []
    assert wait_dialogs(page, expect_some=False) == []
    assert json.dumps(page.page_errors) == "[]"


def test_frontend_template_browser_offers_the_workflows(server, page):
    """Templates > Extensions > swd-scalewise lists the pack's workflows/ folder and opens them."""
    close_dialogs(page)
    page.get_by_text("Templates", exact=True).first.click()
    browser = page.get_by_role("dialog").filter(has_text="Templates")
    browser.get_by_text("swd-scalewise", exact=True).first.click()
    for name in NAMES:
        browser.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "browser-templates.png"))
    name = "swd-sd3.5-large-6-steps"
    browser.get_by_text(name, exact=True).first.click()
    types = sorted(n["type"] for n in ui(name)["nodes"])
    same = "(t) => JSON.stringify(window.app.graph.nodes.map(n => n.type).sort()) === JSON.stringify(t)"
    page.wait_for_function(same, arg=types, timeout=30_000)
    assert page.evaluate("async () => (await window.app.graphToPrompt()).output") == api(name)
    close_dialogs(page)  # the missing-models dialog (the real files are not here)
    assert page.page_errors == []
