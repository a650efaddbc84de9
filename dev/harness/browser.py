"""The frontend in headless Chromium, for the browser tests: the browser, its dialogs, loading a workflow.

Chromium: ``apt-get install -y chromium`` (.ci/run does it). ``playwright install`` is not
used: it downloads browsers, which these machines cannot.
"""
from __future__ import annotations

import os
import shutil

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DIALOGS_JS = """() => Array.from(document.querySelectorAll('.p-dialog'))
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


def dialogs(pg) -> list[str]:
    """The text of every open dialog."""
    return pg.evaluate(DIALOGS_JS)


def close_dialogs(pg) -> None:
    for _ in range(5):
        if not dialogs(pg):
            return
        pg.keyboard.press("Escape")
        pg.wait_for_timeout(200)
    assert dialogs(pg) == [], "dialogs do not close"


def load(pg, workflow: dict) -> dict:
    """Load ``workflow`` (UI format); its ``graphToPrompt`` output, widget values, node types and errors."""
    return pg.evaluate(LOAD_JS, workflow)
