// ComfyUI-LLMGA frontend extension.
// - streams the assistant's text onto the LLMGA prompt nodes while it is generated (progress_text events);
// - after execution shows the final prompt and reply, and the conversation as readable turns;
// - model text is only ever inserted as text (textContent), never parsed as HTML.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const LLMGA_COLOR = "#2a3a5a";
const TEXT_NODES = new Set(["LLMGAGeneratePrompt", "LLMGAEditPrompts", "LLMGAMLLMLoader"]);

function panelOf(node) {
  if (node.llmgaPanel) return node.llmgaPanel;
  const root = document.createElement("div");
  root.className = "llmga-panel";
  root.style.cssText =
    "font: 12px/1.4 sans-serif; color: var(--input-text, #ddd); background: var(--comfy-input-bg, #222);" +
    "border-radius: 6px; padding: 6px; overflow-y: auto; white-space: pre-wrap; word-break: break-word;" +
    "max-height: 260px; min-height: 40px;";
  root.dataset.llmga = "output";
  // serialize:false keeps the panel out of saved widget values and out of the queued prompt
  const widget = node.addDOMWidget("llmga_output", "llmga_output", root, {
    serialize: false,
    getValue: () => "",
    setValue: () => {},
  });
  widget.serialize = false;
  node.llmgaPanel = root;
  return root;
}

function block(label, text, tone) {
  const item = document.createElement("div");
  item.style.cssText = `margin: 2px 0 6px; padding-left: 6px; border-left: 3px solid ${tone};`;
  const head = document.createElement("div");
  head.style.cssText = "opacity: 0.7; font-size: 11px;";
  head.textContent = label;
  const body = document.createElement("div");
  body.textContent = text ?? "…";
  item.append(head, body);
  return item;
}

function showStreaming(node, text) {
  const root = panelOf(node);
  root.replaceChildren(block("writing…", text, "#e0a030"));
  root.scrollTop = root.scrollHeight;
  node.setDirtyCanvas?.(true, true);
}

function showResult(node, message, label) {
  const root = panelOf(node);
  root.replaceChildren();
  const turns = message?.conversation?.[0] ? JSON.parse(message.conversation[0]) : [];
  for (const turn of turns) {
    root.append(block(`you (${turn.task})`, turn.user, "#5a8ad8"));
    root.append(block("LLMGA", turn.reply, "#6abf69"));
  }
  if (message?.text?.[0] !== undefined) root.append(block(label, message.text[0], "#d0d0d0"));
  if (!turns.length && message?.reply?.[0] !== undefined) root.append(block("reply", message.reply[0], "#6abf69"));
  node.setDirtyCanvas?.(true, true);
}

// The template browser opens every template fitted to the window: our graphs are wide, so their nodes end up
// at about half size and unreadable. Our workflows carry a saved view (extra.ds, from scripts/frame_workflows.py)
// at a readable zoom: apply it once the graph is configured, unless the user turned view restoring off or the
// saved view would show no node at all (the frontend's own rule for saved views).
function restoreSavedView() {
  const graph = app.rootGraph ?? app.graph;
  const ds = graph?.extra?.ds;
  const canvas = app.canvas;
  if (!ds || !canvas?.ds || !Array.isArray(ds.offset) || !(ds.scale > 0)) return;
  if (app.extensionManager?.setting?.get?.("Comfy.EnableWorkflowViewRestore") === false) return;
  const nodes = graph._nodes ?? graph.nodes ?? [];
  if (!nodes.some((n) => typeof n.type === "string" && n.type.startsWith("LLMGA"))) return;
  const [w, h] = [canvas.canvas.width / (window.devicePixelRatio || 1), canvas.canvas.height / (window.devicePixelRatio || 1)];
  const view = [-ds.offset[0], -ds.offset[1], w / ds.scale, h / ds.scale];
  const seen = nodes.some(
    (n) => n.pos[0] < view[0] + view[2] && n.pos[0] + n.size[0] > view[0] && n.pos[1] < view[1] + view[3] && n.pos[1] + n.size[1] > view[1],
  );
  if (!seen) return;
  canvas.ds.scale = ds.scale;
  canvas.ds.offset = [ds.offset[0], ds.offset[1]];
  canvas.setDirty(true, true);
}

// Missing models on load. ComfyUI's frontend reports missing single files itself (a checkpoint, a ControlNet, the
// DiffRIR weights: the workflows carry their link and folder in `models`). It does not check model *folders*, so a
// missing LLMGA MLLM or diffusers folder used to surface only after Run; this reports them when the graph opens:
// the node is marked and a message says what to get and where to put it.
const FOLDER_LOADERS = { LLMGAMLLMLoader: ["model", "llmga_mllm"], LLMGACheckpointLoader: ["folder", "diffusers"] };
const FOLDER_PATHS = { llmga_mllm: "ComfyUI/models/llmga/mllm/", diffusers: "ComfyUI/models/diffusers/" };
let requestedFolders = new Map(); // node id -> the folder the workflow file names (before combos are reset)

function rememberRequestedFolders(graphData) {
  requestedFolders = new Map();
  for (const node of graphData?.nodes ?? []) {
    const spec = FOLDER_LOADERS[node.type];
    const value = Array.isArray(node.widgets_values) ? node.widgets_values[0] : node.widgets_values?.[spec?.[0]];
    if (spec && typeof value === "string" && value) requestedFolders.set(String(node.id), value);
  }
}

function missingFolders(graph) {
  const missing = [];
  for (const node of graph?._nodes ?? []) {
    const spec = FOLDER_LOADERS[node.type];
    if (!spec || node.mode === 2 || node.mode === 4) continue; // muted or bypassed nodes do not run
    const name = requestedFolders.get(String(node.id)) ?? node.widgets?.find((w) => w.name === spec[0])?.value;
    const defined = window.LiteGraph?.registered_node_types?.[node.type]?.nodeData?.input?.required?.[spec[0]]?.[0];
    const widget = node.widgets?.find((w) => w.name === spec[0]);
    const available = Array.isArray(defined) ? defined : widget?.options?.values;
    if (typeof name !== "string" || !name || !Array.isArray(available) || available.includes(name)) continue;
    const entry = (node.properties?.models ?? []).find((m) => m.name === name);
    missing.push({ node, name, url: entry?.url, folder: FOLDER_PATHS[entry?.directory ?? spec[1]] });
  }
  return missing;
}

function reportMissingFolders() {
  for (const { node, name, url, folder } of missingFolders(app.rootGraph ?? app.graph)) {
    const title = node.title || node.type;
    const get = url ? `Get it from ${url} ` : "Get the released folder ";
    const detail =
      `${title} (#${node.id}): the model folder "${name}" is not installed. ${get}` +
      `(or run: python -m llmga_core.download ${name}) and put the whole folder in ${folder}${name}, ` +
      "then press R in ComfyUI to refresh the lists.";
    node.has_errors = true;
    node.llmgaMissing = detail;
    app.extensionManager?.toast?.add?.({ severity: "warn", summary: "LLMGA: model folder missing", detail });
    console.warn(`[LLMGA] ${detail}`);
  }
  app.canvas?.setDirty?.(true, true);
}

api.addEventListener("progress_text", (event) => {
  const { nodeId, text } = event.detail ?? {};
  const node = app.graph?.getNodeById?.(nodeId) ?? app.graph?.getNodeById?.(Number(nodeId));
  if (node && TEXT_NODES.has(node.comfyClass)) showStreaming(node, text);
});

app.registerExtension({
  name: "llmga.core",
  async beforeConfigureGraph(graphData) {
    rememberRequestedFolders(graphData);
  },
  async afterConfigureGraph() {
    restoreSavedView();
    reportMissingFolders();
  },
  nodeCreated(node) {
    if (typeof node.comfyClass === "string" && node.comfyClass.startsWith("LLMGA")) {
      node.color = node.color ?? LLMGA_COLOR;
    }
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (FOLDER_LOADERS[nodeData.name]) {
      // a red frame on a loader whose folder is missing (the frontend resets has_errors to its own findings)
      const onDrawForeground = nodeType.prototype.onDrawForeground;
      nodeType.prototype.onDrawForeground = function (ctx) {
        onDrawForeground?.apply(this, arguments);
        if (!this.llmgaMissing) return;
        const title = window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
        ctx.save();
        ctx.strokeStyle = "#ff4444";
        ctx.lineWidth = 3;
        ctx.strokeRect(-3, -title - 3, this.size[0] + 6, this.size[1] + title + 6);
        ctx.restore();
      };
    }
    if (!TEXT_NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      showResult(this, message, nodeData.name === "LLMGAMLLMLoader" ? "loaded" : "prompt");
    };
  },
});
