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

api.addEventListener("progress_text", (event) => {
  const { nodeId, text } = event.detail ?? {};
  const node = app.graph?.getNodeById?.(nodeId) ?? app.graph?.getNodeById?.(Number(nodeId));
  if (node && TEXT_NODES.has(node.comfyClass)) showStreaming(node, text);
});

app.registerExtension({
  name: "llmga.core",
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
