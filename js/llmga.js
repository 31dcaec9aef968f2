// ComfyUI-LLMGA frontend extension. Later versions stream the assistant's text onto the prompt nodes;
// for now it registers the pack and tags LLMGA nodes with a colour so they are easy to find in a graph.
import { app } from "../../scripts/app.js";

const LLMGA_COLOR = "#2a3a5a";

app.registerExtension({
  name: "llmga.core",
  nodeCreated(node) {
    if (typeof node.comfyClass === "string" && node.comfyClass.startsWith("LLMGA")) {
      node.color = node.color ?? LLMGA_COLOR;
    }
  },
});
