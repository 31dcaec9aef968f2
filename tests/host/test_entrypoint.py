"""The entry point as ComfyUI imports it: a broken node module must not take the others down."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.fixtures.cache import REPO_ROOT
from tests.harness.host import comfyui_dir

LOAD_PACK = textwrap.dedent(
    """
    import asyncio, importlib.util, json, logging, sys
    sys.path.insert(0, sys.argv[1])
    from comfy.cli_args import args
    args.cpu = True
    import utils.extra_config  # noqa: F401  (ComfyUI's own import order; see comfyui-host.md 3.4)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
    pack = sys.argv[2]
    spec = importlib.util.spec_from_file_location("llmga_pack_under_test", pack + "/__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.NODE_MODULES = (*module.NODE_MODULES, "not_a_module")
    extension = asyncio.run(module.comfy_entrypoint())
    nodes = asyncio.run(extension.get_node_list())
    print("NODES=" + json.dumps([n.define_schema().node_id for n in nodes]))
    """
)


def test_a_failing_node_module_is_logged_and_the_rest_load() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_PACK, str(comfyui_dir()), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = result.stdout + result.stderr
    assert "node module 'not_a_module' failed to import" in out
    assert "ModuleNotFoundError" in out  # the log says why, with the traceback
    loaded = json.loads(out.split("NODES=")[1].splitlines()[0])
    assert "LLMGAOutpaintCanvas" in loaded
