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

api.addEventListener("progress_text", (event) => {
  const { nodeId, text } = event.detail ?? {};
  const node = app.graph?.getNodeById?.(nodeId) ?? app.graph?.getNodeById?.(Number(nodeId));
  if (node && TEXT_NODES.has(node.comfyClass)) showStreaming(node, text);
});

app.registerExtension({
  name: "llmga.core",
  async afterConfigureGraph() {
    restoreSavedView();
  },
  nodeCreated(node) {
    if (typeof node.comfyClass === "string" && node.comfyClass.startsWith("LLMGA")) {
      node.color = node.color ?? LLMGA_COLOR;
    }
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!TEXT_NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      showResult(this, message, nodeData.name === "LLMGAMLLMLoader" ? "loaded" : "prompt");
    };
  },
});
