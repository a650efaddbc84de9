"""What a user sees on the pack's nodes in the real frontend (issue 21), classic canvas and Vue nodes.

Runs against the ComfyUI that ``COMFYUI_PATH`` names (0.3.75 with frontend 1.32.9 by default;
e.g. ``COMFYUI_PATH=/work/host033/ComfyUI`` with that host's venv for 0.33.0 / frontend 1.49.6),
each test once per node mode (``Comfy.VueNodes.Enabled`` off and on). Screenshots go to
test-artifacts/feedback-<frontend>-<mode>-*.png.

* the nodes' messages are on the node after the run (SwD LoRA Loader, SwD Sampler, and SwD
  Sampler (SAMPLER) inside SamplerCustomAdvanced), warnings in their own colour with a sign, and
  again on a page with empty boxes (a reload, another tab) after a re-run that ComfyUI answers
  from its cache, in part or whole;
* a LoRA file named ``<img src=x onerror=alert(1)>.safetensors`` shows that name as text: no
  element is made from it and no script runs;
* SwD Schedule's scales/sigmas fields hold the selected preset's values (FLUX, SDXL) and are
  disabled, and editable under ``custom``;
* a bad custom schedule is reported once, under the input that is wrong (``scales`` or ``sigmas``), by
  the server (node_errors) and on the page (1.32.9: the error dialog's message; 1.49.6: the toast naming
  the input; both: that input's slot marked);
* each node's help page is served where the frontends look for it (/extensions/<pack>/docs/<node>.md)
  and opens with the pack's text: in the node library's help panel (1.32.9), in the selected node's Info
  tab of the properties panel (1.49.6, whose Parameters tab does not list the message box).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from harness import paths, standin_workflow
from harness.browser import CHROMIUM, CHROMIUM_ARGS, close_dialogs, load, node_rects, overlaps
from harness.comfy_server import ComfyServer
from harness.paths import ARTIFACTS
from harness.shipped_workflows import ui

XSS_LORA = "<img src=x onerror=alert(1)>.safetensors"
MODES = ["classic", "vue"]
SIZE = 256
BASIC = "swd-sd3.5-large-6-steps"
ADVANCED = "swd-sd3.5-large-6-steps-sampler-custom-advanced"
BOX_JS = """(id) => { const b = document.querySelector(`[data-swd-messages="${id}"]`);
    return b ? {text: b.innerText, rows: Array.from(b.children).map(r => [r.className, r.textContent,
        getComputedStyle(r).color]), elements: b.querySelectorAll('*').length - b.children.length,
        visible: b.getClientRects().length > 0 && b.offsetHeight > 0} : null; }"""
EMPTY_BOXES_JS = """(limit) => Array.from(document.querySelectorAll('.swd-messages'))
    .map(b => b.closest('.dom-widget') ?? b).filter(e => e.getClientRects().length > 0)
    .map(e => e.getBoundingClientRect()).filter(r => r.height > limit && r.width > 2)
    .map(r => [r.x, r.y, r.width, r.height])"""
BOX_TEXT_JS = "(id) => app.graph.getNodeById(id).widgets.find(w => w.name === 'swd_messages')?.value"


@pytest.fixture(scope="module")
def feedback_server(tmp_path_factory):
    """A server whose loras folders also hold the stand-in PEFT LoRA (no adapter_config.json) as XSS_LORA."""
    work = tmp_path_factory.mktemp("feedback")
    loras = work / "loras"
    loras.mkdir()
    shutil.copy(paths.MODELS / "loras" / paths.SD3_LORA, loras / XSS_LORA)
    yaml = work / "extra_model_paths.yaml"
    yaml.write_text(paths.EXTRA_PATHS.read_text() + f"\nswd_feedback_test:\n    loras: {loras}\n")
    srv = ComfyServer(work, extra_args=["--preview-method", "auto"], extra_paths=yaml)
    try:
        assert srv.post("/settings/Comfy.TutorialCompleted", True)[0] == 200
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module", params=MODES)
def page(feedback_server, request):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    assert feedback_server.post("/settings", {"Comfy.VueNodes.Enabled": request.param == "vue"})[0] == 200
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1800, "height": 1100})
        pg.page_errors, pg.js_dialogs = [], []
        pg.on("pageerror", lambda e: pg.page_errors.append(str(e)))
        pg.on("dialog", lambda d: (pg.js_dialogs.append(d.message), d.dismiss()))
        pg.goto(feedback_server.url)
        pg.wait_for_function("window.app && window.app.vueAppReady && window.app.graph", timeout=180_000)
        pg.mode = request.param
        pg.frontend = pg.evaluate("window.__COMFYUI_FRONTEND_VERSION__ ?? 'unknown'")
        assert pg.evaluate("app.extensionManager.setting.get('Comfy.VueNodes.Enabled')") == (request.param == "vue")
        try:
            yield pg
        finally:
            browser.close()


def shot(pg, name: str) -> None:
    pg.wait_for_timeout(400)
    pg.screenshot(path=str(ARTIFACTS / f"feedback-{pg.frontend}-{pg.mode}-{name}.png"))


def focus(pg, node_id: int, zoom: float = 1.0) -> None:
    """Put node ``node_id`` near the top left of the canvas at ``zoom``."""
    pg.evaluate("""([id, zoom]) => { const n = app.graph.getNodeById(id); const ds = app.canvas.ds;
        ds.scale = zoom; ds.offset = [-n.pos[0] + 260 / zoom, -n.pos[1] + 200 / zoom];
        app.canvas.setDirty(true, true); app.canvas.draw?.(true, true); }""", [node_id, zoom])
    pg.wait_for_timeout(300)


def set_widget(pg, node_id: int, name: str, value) -> None:
    pg.evaluate("""([id, name, value]) => { const w = app.graph.getNodeById(id).widgets.find(w => w.name === name);
        w.value = value; w.callback?.(value); }""", [node_id, name, value])


def workflow(server, name: str, preset: str | None = None, lora: str | None = None) -> dict:
    wf = standin_workflow.use_standins_ui(ui(name), server.object_info())
    for node in wf["nodes"]:
        if node["type"] == "SwDSchedule" and preset:
            node["widgets_values"][0] = preset
        if node["type"] == "SwDLoraLoader" and lora:
            node["widgets_values"][0] = lora
        if node["type"] == "EmptySD3LatentImage":
            node["widgets_values"][:2] = [SIZE, SIZE]
        if node["type"] in ("SwDSampler", "RandomNoise"):
            node["widgets_values"][0] = 1000 + int(time.time() * 1000) % 100000  # not from an earlier cache
    return wf


def node_id(wf: dict, node_type: str) -> int:
    return next(n["id"] for n in wf["nodes"] if n["type"] == node_type)


def queue(pg, server) -> str:
    with pg.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as sent:
        pg.evaluate("async () => { await app.queuePrompt(0); }")
    assert sent.value.status == 200, sent.value.text()
    prompt_id = sent.value.json()["prompt_id"]
    deadline = time.time() + 300
    while not server.history(prompt_id) and time.time() < deadline:
        time.sleep(0.3)
    assert server.history(prompt_id)["status"]["status_str"] == "success", server.history(prompt_id)["status"]
    pg.wait_for_timeout(500)
    return prompt_id


def box(pg, nid: int) -> dict | None:
    """The message box of node ``nid`` as the page shows it (Vue nodes exist only in the viewport: see `seen_box`)."""
    return pg.evaluate(BOX_JS, nid)


def seen_box(pg, nid: int, screenshot: str | None = None) -> dict | None:
    focus(pg, nid)
    if screenshot:
        shot(pg, screenshot)
    return box(pg, nid)


def clear_boxes(pg, nid: int) -> None:
    pg.evaluate("(id) => { app.graph.getNodeById(id).widgets.find(w => w.name === 'swd_messages').value = ''; }", nid)


def test_messages_are_on_the_nodes_as_text_and_come_back_on_a_rerun(feedback_server, page):
    wf = workflow(feedback_server, BASIC, preset="FLUX.1-dev, 4 steps", lora=XSS_LORA)
    lora, sampler = node_id(wf, "SwDLoraLoader"), node_id(wf, "SwDSampler")
    load(page, wf)
    close_dialogs(page)
    focus(page, lora, 0.6)
    # before a run the boxes are empty and take no room: on the classic canvas nothing of theirs lies over
    # it (1.49.6 drew them as dark columns down the page, over SwD Schedule); a Vue node keeps a strip
    # of 8 units (4.8 px at this zoom) inside the node
    limit = 2 if page.mode == "classic" else 6
    assert page.evaluate(EMPTY_BOXES_JS, limit) == [], page.evaluate(EMPTY_BOXES_JS, 0)
    queue(page, feedback_server)
    # the grown nodes (the loader's warning on a config-less LoRA is its longest message) overlap no other
    assert overlaps(node_rects(page)) == []
    seen = {nid: seen_box(page, nid, f"messages-{nid}") for nid in (lora, sampler)}
    for nid, shown in seen.items():
        assert shown is not None and shown["visible"], (nid, shown)
        assert shown["elements"] == 0, shown  # rows hold text nodes only
    # the LoRA: its name as text, the missing config as a warning naming the file and where it comes from
    lora_text = seen[lora]["text"]
    assert XSS_LORA in lora_text and "patched" in lora_text, lora_text
    warnings = [r for r in seen[lora]["rows"] if r[0] == "swd-warning"]
    assert warnings and warnings[0][1].startswith("\u26a0 Warning: no adapter_config.json beside " + XSS_LORA)
    assert "scale 1" in warnings[0][1] and "adapter_model.safetensors" in warnings[0][1]
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.js_dialogs == []  # alert(1) never ran
    # the sampler: the schedule/model mismatch as a warning (own colour), then the steps and their cost
    rows = seen[sampler]["rows"]
    assert rows[0][0] == "swd-warning" and "published for FLUX but the model is SD3.5" in rows[0][1], rows
    assert rows[0][2] != rows[-1][2], "a warning has the colour of the other lines"
    assert rows[-1][1] == "4 steps, latent 16x16 → 20x20 → 24x24 → 32x32: ≈ 2.2 full-size steps (cost by latent area)"
    # re-runs on a page whose boxes are empty (as after a reload or in another tab): a new seed runs the
    # sampler again, while ComfyUI answers the LoRA loader from its cache without re-sending its output
    # (nothing runs that needs it); then everything from the cache. Both boxes show their text again.
    before = {nid: s["text"] for nid, s in seen.items()}
    for rerun in ("new seed", "all cached"):
        clear_boxes(page, sampler)
        clear_boxes(page, lora)
        if rerun == "new seed":
            set_widget(page, sampler, "seed", 7 + int(time.time()) % 1000)
        queue(page, feedback_server)
        page.wait_for_function(f"() => ({BOX_TEXT_JS})({lora}) && ({BOX_TEXT_JS})({sampler})", timeout=10_000)
        assert {nid: seen_box(page, nid)["text"] for nid in (lora, sampler)} == before, rerun
    assert page.page_errors == []


def test_the_sampler_input_of_sampler_custom_advanced_reports_on_its_node(feedback_server, page):
    wf = workflow(feedback_server, ADVANCED, preset="FLUX.1-dev, 4 steps")
    sampler = node_id(wf, "SamplerSwD")
    load(page, wf)
    close_dialogs(page)
    queue(page, feedback_server)
    shown = seen_box(page, sampler, "sampler-custom-advanced")
    assert shown is not None and shown["visible"], shown
    assert shown["rows"][0][0] == "swd-warning" and "published for FLUX but the model is SD3.5" in shown["rows"][0][1]
    assert shown["rows"][-1][1].startswith("4 steps, latent 16x16 → 20x20 → 24x24 → 32x32: ≈ 2.2 full-size steps")
    clear_boxes(page, sampler)  # as after a reload; the re-run comes from the cache, SamplerCustomAdvanced too
    queue(page, feedback_server)
    page.wait_for_function(f"() => ({BOX_TEXT_JS})({sampler})", timeout=10_000)
    assert seen_box(page, sampler)["text"] == shown["text"]
    assert page.page_errors == []


@pytest.mark.parametrize("preset", ["FLUX.1-dev, 4 steps", "SDXL, 4 steps"])
def test_schedule_fields_show_the_running_preset(feedback_server, page, preset):
    from swd_core import preset_texts

    wf = workflow(feedback_server, BASIC, preset=preset)
    schedule = node_id(wf, "SwDSchedule")
    loaded = load(page, wf)
    close_dialogs(page)
    scales, sigmas = preset_texts(preset)
    assert loaded["widgets"][str(schedule)] == [preset, scales, sigmas]
    assert loaded["output"][str(schedule)]["inputs"] == {"preset": preset, "scales": scales, "sigmas": sigmas}
    state = "(id) => app.graph.getNodeById(id).widgets.filter(w => w.name !== 'preset').map(w => [w.value, w.label])"
    assert page.evaluate(state, schedule) == [[scales, "scales (preset)"], [sigmas, "sigmas (preset)"]]
    focus(page, schedule, 1.3)
    shot(page, f"schedule-{preset.split(',')[0]}")
    if page.mode == "vue":  # the fields on the page, not only the widget objects
        texts = page.evaluate("""(id) => Array.from(document.querySelectorAll(`[data-node-id="${id}"] input`))
            .map(i => i.value)""", schedule)
        assert scales in texts and sigmas in texts, texts
    set_widget(page, schedule, "scales", "32, 64, 128")  # an edit under a preset makes it custom
    assert page.evaluate(state, schedule) == [["32, 64, 128", None], [sigmas, None]]
    assert page.evaluate("(id) => app.graph.getNodeById(id).widgets[0].value", schedule) == "custom"


@pytest.mark.parametrize("scales,sigmas,cause,wrong", [
    ("32, 64, 128", "1.0, 0.5, 0", "3 scales need 4 sigmas", "sigmas"),
    ("64, 32, 128", "1.0, 0.8, 0.5, 0", "scales must increase", "scales"),
])
def test_a_bad_custom_schedule_is_reported_once_under_the_wrong_input(feedback_server, page, scales, sigmas,
                                                                       cause, wrong):
    other = {"scales": "sigmas", "sigmas": "scales"}[wrong]
    wf = workflow(feedback_server, BASIC, preset="custom")
    schedule = node_id(wf, "SwDSchedule")
    next(n for n in wf["nodes"] if n["id"] == schedule)["widgets_values"][1:] = [scales, sigmas]
    output = load(page, wf)["output"]
    close_dialogs(page)
    status, response = feedback_server.queue(output)
    assert status == 400
    errors = response["node_errors"][str(schedule)]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == [wrong], errors
    assert cause in errors[0]["details"] and errors[0]["details"].startswith(f"{wrong} - "), errors
    page.evaluate("async () => { await app.queuePrompt(0); }")
    # 1.32.9 opens an error dialog with the message; 1.49.6 a toast naming the input (its details panel
    # lists the server's errors, checked above)
    page.wait_for_function(f"/{cause}|rejected the value for {wrong}/.test(document.body.innerText)",
                           timeout=30_000)
    text = page.evaluate("document.body.innerText")
    marked = page.evaluate("(id) => app.graph.getNodeById(id).inputs.filter(i => i.hasErrors).map(i => i.name)",
                           schedule)
    shot(page, f"schedule-error-{wrong}")
    if cause in text:
        assert text.count(cause) == 1, text
    else:
        assert text.count(f"rejected the value for {wrong}") == 1, text
        assert f"value for {other}" not in text and "value for preset" not in text, text
    assert marked == [wrong]
    close_dialogs(page)
    assert page.page_errors == []


HELP = {  # a sentence of each page in web/docs/
    "SwDLoraLoader": "Loads a scale-wise distillation (SwD) LoRA onto SD3.5, FLUX.1-dev or SDXL",
    "SwDSchedule": "The schedule of a scale-wise distilled model",
    "SwDSampler": "A KSampler for scale-wise distilled models",
    "SamplerSwD": "The scale-wise SwD sampler as a SAMPLER",
}
# The node library's help panel, opened as its own "?" buttons open it: the node library tab and
# the frontend's nodeHelp store (the frontend then fetches /extensions/<pack>/docs/<node>.md).
OPEN_HELP_JS = """async (name) => {
    const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
    const bar = pinia._s.get('sidebarTab');
    if (bar.activeSidebarTabId !== 'node-library') bar.toggleSidebarTab('node-library');
    for (let i = 0; i < 100 && !pinia._s.get('nodeHelp'); i++) await new Promise(r => setTimeout(r, 100));
    if (!pinia._s.get('nodeHelp')) return false;
    pinia._s.get('nodeHelp').openHelp(pinia._s.get('nodeDef').nodeDefsByName[name]);
    return true;
}"""
# What the frontends' NodeHelpService fetches for a custom node: /extensions/<pack>/docs/<node>.md
FETCH_HELP_JS = """async (name) => {
    const r = await fetch(window.comfyAPI.api.api.fileURL(`/extensions/swd-scalewise/docs/${name}.md`));
    return [r.status, await r.text()];
}"""


@pytest.mark.parametrize("node", list(HELP))
def test_each_node_help_page_opens_with_its_text(feedback_server, page, node):
    if page.mode == "vue":
        pytest.skip("the help panel does not depend on the node mode (run in classic)")
    status, text = page.evaluate(FETCH_HELP_JS, node)
    assert status == 200 and HELP[node] in text and "## Inputs" in text and "## Typical graph" in text
    if page.evaluate(OPEN_HELP_JS, node):  # 1.32.9: the node library's help panel
        page.get_by_text(HELP[node]).first.wait_for(state="visible", timeout=30_000)
        assert page.get_by_text("Typical graph").first.is_visible()
        shot(page, f"help-{node}")
        page.evaluate("() => document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia"
                      "._s.get('nodeHelp').closeHelp()")
    else:  # 1.49.6 (whose new node library has no help store): the node's Info tab in the properties panel
        page.evaluate("""(name) => { const lg = window.LiteGraph ?? window.comfyAPI.litegraph.LiteGraph;
            app.graph.clear(); const n = lg.createNode(name); n.pos = [100, 100]; app.graph.add(n);
            app.canvas.selectNode(n); app.canvas.setDirty(true, true); }""", node)
        toggle = page.get_by_label("Toggle properties panel").first
        toggle.click()
        page.get_by_role("tab", name="Parameters").first.click()
        page.wait_for_timeout(500)
        panel = page.evaluate("document.body.innerText")
        assert "swd_messages" not in panel, "the message box is listed as a parameter"
        page.get_by_role("tab", name="Info").first.click()
        page.get_by_text(HELP[node]).first.wait_for(state="visible", timeout=30_000)
        assert page.get_by_text("Typical graph").first.is_visible()
        shot(page, f"help-{node}")
        toggle.click()
    assert page.page_errors == []
