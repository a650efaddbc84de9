// SwD (scale-wise distillation) nodes in ComfyUI's frontend.
//
// 1. Messages on the node. The pack's nodes send what the user should read as ComfyUI's
//    PreviewText output ({text: ["line\nline"]}) in their `executed` event (re-sent from the
//    cache on a re-run), and SwD Sampler (SAMPLER), which speaks while SamplerCustom runs it,
//    as the `swd.messages` event with its node id (nodes/feedback.py). Both land in one
//    read-only box under the node's widgets, as plain text (textContent, never HTML: the lines
//    carry file and folder names); lines starting "Warning:" get the warning colour and a sign.
//    The box stays until the node next reports (it is not saved with the workflow); it is
//    there, empty and invisible, from the node's creation on. For the nodes ComfyUI answers from
//    its cache without re-sending their output (after a reload, in another tab), the page asks
//    the server what they showed when they ran (GET /swd/messages).
// 2. SwD Schedule shows the schedule that runs: under a preset, the scales and sigmas fields
//    hold that preset's values (GET /swd/presets), labelled "scales (preset)"; editing one
//    switches the preset to "custom", which runs what the fields say. The server reads the
//    fields only for "custom", so a saved workflow whose fields hold other text runs exactly
//    as before (only its fields now show the preset's values).
// 3. The template browser lists the pack's workflows in the order a new user needs them. ComfyUI's
//    /workflow_templates lists them in the file system's order (hash order on ext4) and the frontends
//    keep it; the pack's names are sorted by web/templates.json as the frontend fetches the list
//    (api.getWorkflowTemplates), names it does not know last. Other packs' lists are left as they are.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const SPEAKING_NODES = new Set(["SwDLoraLoader", "SwDSampler", "SamplerSwD"]);
const PACK_NODES = new Set([...SPEAKING_NODES, "SwDSchedule"]);
const BOX = "swd_messages";
const WARNING = "Warning:";
const CUSTOM = "custom";
let presets = {};
// this file is served as /extensions/<pack folder>/swd.js: /workflow_templates keys the pack by that folder
const HERE = new URL(import.meta.url);
const PACK = decodeURIComponent(HERE.pathname.split("/").at(-2));

function messageBox(node) {
    const found = node.widgets?.find((w) => w.name === BOX);
    if (found) return found;
    const box = document.createElement("div");
    box.className = "swd-messages";
    Object.assign(box.style, {
        font: "12px monospace", lineHeight: "1.35", whiteSpace: "pre-wrap", overflowWrap: "anywhere",
        overflowY: "auto", padding: "4px 6px", boxSizing: "border-box", borderRadius: "6px",
        background: "var(--comfy-input-bg, #222)", color: "var(--input-text, #ddd)", userSelect: "text",
    });
    let text = "";
    const widget = node.addDOMWidget(BOX, "swd_messages", box, {
        serialize: false,
        hideOnZoom: false,
        hideInPanel: true, // output, not a parameter: 1.49.6's properties panel leaves it out
        getValue: () => text,
        setValue: (value) => {
            text = Array.isArray(value) ? value.join("\n") : String(value ?? "");
            render(box, text);
        },
        getMinHeight: () => (text ? boxHeight(text, node.size[0]) : 0),
        getMaxHeight: () => (text ? boxHeight(text, node.size[0]) : 0),
    });
    widget.serialize = false;
    // Empty, the box is hidden on the classic canvas, where the frontend lays DOM widgets over the canvas:
    // 1.49.6 stretches one of no height down the whole column below its node, over the nodes there (and
    // their clicks). Vue nodes mount the widgets a node has when they mount it, so there it stays.
    Object.defineProperty(widget, "hidden", {
        get: () => !text && !vueNodes(), set: () => {}, configurable: true,
    });
    render(box, text);
    return widget;
}

function vueNodes() {
    return Boolean(window.LiteGraph?.vueNodesMode ?? app.extensionManager?.setting?.get?.("Comfy.VueNodes.Enabled"));
}

// The box's height for `text` in a node `width` wide: its lines wrapped at the monospace width.
function boxHeight(text, width) {
    const perLine = Math.max(16, Math.floor((width - 40) / 7.6));
    const rows = text.split("\n").filter((l) => l.trim())
        .reduce((n, line) => n + Math.ceil((line.length + 2) / perLine), 0);
    return Math.min(18 + 16.5 * (rows + 0.5), 340);
}

function render(box, text) {
    box.replaceChildren();
    box.style.padding = text ? "4px 6px" : "0";
    box.style.visibility = text ? "visible" : "hidden";
    for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        const row = document.createElement("div");
        const warning = line.startsWith(WARNING);
        row.className = warning ? "swd-warning" : "swd-info";
        row.textContent = warning ? `\u26a0 ${line}` : line; // text only: names are user-controlled
        if (warning) Object.assign(row.style, { color: "#ffb74d", fontWeight: "bold" });
        box.appendChild(row);
    }
}

function showMessages(node, text) {
    if (!node || text == null) return;
    const widget = messageBox(node);
    widget.element.dataset.swdMessages = String(node.id); // its id once it is in the graph: tests find the box by it
    widget.value = Array.isArray(text) ? text.join("\n") : String(text);
    const [w, h] = node.computeSize();
    node.setSize([Math.max(node.size[0], w, 360), Math.max(node.size[1], h)]);
    node.setDirtyCanvas?.(true, true);
    app.graph?.setDirtyCanvas?.(true, true);
}

// What the cached pack nodes of prompt `detail.prompt_id` showed when they last ran.
async function showCached(detail) {
    for (const id of detail?.nodes ?? []) {
        const node = nodeById(id);
        if (!node || !SPEAKING_NODES.has(node.comfyClass ?? node.type)) continue;
        try {
            const query = new URLSearchParams({ prompt_id: detail.prompt_id, node: String(id) });
            const response = await api.fetchApi(`/swd/messages?${query}`);
            const { text } = response.ok ? await response.json() : {};
            if (text) showMessages(node, text);
        } catch (e) {
            console.warn("[swd] no messages for cached node", id, e);
        }
    }
}

function nodeById(id) {
    const graph = app.canvas?.graph ?? app.graph;
    return graph?.getNodeById(id) ?? app.graph?.getNodeById(id);
}

function syncSchedule(node) {
    const widget = (name) => node.widgets?.find((w) => w.name === name);
    const preset = widget("preset")?.value;
    const values = presets[preset];
    for (const name of ["scales", "sigmas"]) {
        const w = widget(name);
        if (!w) continue;
        if (values) w.value = values[name];
        // the label only (the input's name, which saved workflows use, stays): "scales (preset)"
        w.label = preset === CUSTOM ? undefined : `${name} (preset)`;
    }
    node.setDirtyCanvas?.(true, true);
}

// Editing a field under a preset makes the schedule custom: what the fields say is what runs.
function onFieldEdited(node) {
    const preset = node.widgets?.find((w) => w.name === "preset");
    if (!preset || preset.value === CUSTOM) return;
    preset.value = CUSTOM;
    syncSchedule(node);
}

async function templateOrder() {
    try {
        const response = await fetch(new URL("templates.json", HERE));
        return response.ok ? (await response.json()).order ?? [] : [];
    } catch (e) {
        console.warn("[swd] no template order", e);
        return [];
    }
}

function orderTemplates() {
    const list = api.getWorkflowTemplates;
    if (typeof list !== "function" || list.swdOrdered) return;
    const ordered = async function () {
        const templates = await list.apply(this, arguments);
        const names = templates?.[PACK];
        if (!Array.isArray(names)) return templates;
        const order = await templateOrder();
        const rank = new Map(order.map((name, i) => [name, i]));
        const place = (name) => rank.get(name) ?? order.length;
        return { ...templates, [PACK]: [...names].sort((a, b) => place(a) - place(b) || a.localeCompare(b)) };
    };
    ordered.swdOrdered = true;
    api.getWorkflowTemplates = ordered;
}
orderTemplates(); // when the module loads: before any template list is fetched

app.registerExtension({
    name: "swd.scalewise",
    async init() {
        try {
            const response = await api.fetchApi("/swd/presets");
            if (response.ok) presets = await response.json();
        } catch (e) {
            console.warn("[swd] no preset table", e);
        }
        api.addEventListener("swd.messages", ({ detail }) => showMessages(nodeById(detail.node), detail.text));
        api.addEventListener("execution_cached", ({ detail }) => showCached(detail));
    },
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (!PACK_NODES.has(nodeData.name)) return;
        if (nodeData.name !== "SwDSchedule") {
            // the (empty, invisible) box exists from the start: Vue nodes render the widgets a node
            // has when they mount it; the box is the last widget, so saved widget values keep their places
            const created = nodeType.prototype.onNodeCreated;
            nodeType.prototype.onNodeCreated = function () {
                const r = created?.apply(this, arguments);
                messageBox(this);
                return r;
            };
        }
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (output) {
            onExecuted?.apply(this, arguments);
            if (output?.text) showMessages(this, output.text);
        };
        if (nodeData.name !== "SwDSchedule") return;
        const onNodeCreated = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const r = onNodeCreated?.apply(this, arguments);
            const preset = this.widgets?.find((w) => w.name === "preset");
            if (preset) {
                const callback = preset.callback;
                const node = this;
                preset.callback = function () {
                    const result = callback?.apply(this, arguments);
                    syncSchedule(node);
                    return result;
                };
            }
            for (const name of ["scales", "sigmas"]) {
                const field = this.widgets?.find((w) => w.name === name);
                if (!field) continue;
                const callback = field.callback;
                const node = this;
                field.callback = function () {
                    const result = callback?.apply(this, arguments);
                    onFieldEdited(node);
                    return result;
                };
            }
            syncSchedule(this);
            return r;
        };
        const onConfigure = nodeType.prototype.onConfigure;
        nodeType.prototype.onConfigure = function () {
            const r = onConfigure?.apply(this, arguments);
            syncSchedule(this);
            return r;
        };
    },
});
