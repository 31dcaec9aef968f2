"""Run a snippet inside a fresh Python process with ComfyUI imported and the pack loaded.

For checks that need tensors rather than PNGs (conditioning equality, for example). A subprocess keeps
ComfyUI's import-time side effects (it puts comfy/ first on sys.path) out of the pytest process. The
snippet sees ``pack`` (the pack module as ComfyUI loads it), ``comfy_nodes`` (ComfyUI's nodes module),
``torch`` and ``MODELS`` (a dict of paths passed in), and stores JSON-able results in ``RESULT``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.fixtures.cache import REPO_ROOT

from .host import comfyui_dir

PRELUDE = """
import asyncio, importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
args.fp32_text_enc = {fp32}
import utils.extra_config  # ComfyUI's own import order (comfyui-host.md 3.4)
import nodes as comfy_nodes
import torch
spec = importlib.util.spec_from_file_location("llmga_pack", sys.argv[2] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[2]])
pack = importlib.util.module_from_spec(spec)
sys.modules["llmga_pack"] = pack
spec.loader.exec_module(pack)
MODELS = json.loads(sys.argv[3])
RESULT = {{}}
"""


def run_in_comfy(snippet: str, models: dict[str, str | Path] | None = None, fp32_text_encoder: bool = True) -> Any:
    code = (
        PRELUDE.format(fp32=fp32_text_encoder) + textwrap.dedent(snippet) + "\nprint('RESULT=' + json.dumps(RESULT))\n"
    )
    paths = json.dumps({k: str(v) for k, v in (models or {}).items()})
    done = subprocess.run(
        [sys.executable, "-c", code, str(comfyui_dir()), str(REPO_ROOT), paths],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"in-process snippet failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        )
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT=") :])
