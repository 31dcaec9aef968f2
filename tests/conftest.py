"""Session fixtures shared by the host and browser tiers: tiny models and one real ComfyUI server."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.fixtures.host_models import host_models
from tests.harness.client import ComfyClient
from tests.harness.host import tiny_sd_models
from tests.harness.server import ComfyServer

pytest_plugins = ("tests.harness.timing",)  # the per-tier time summary at the end of each run

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "artifacts"

# Torch threads of the test process (tests/README.md, "Parity tolerances": the parity bounds hold for any
# count; run with LLMGA_TEST_THREADS=4 to check). One by default: the tiny models are latency-bound, and on a
# busy or 2-core machine two OpenMP threads per process spin against each other (a tiny CLIP encode: 0.17 s
# with 1 thread, 1.9 s with 2 at load 16), and pytest-xdist already gives each worker a core.
TEST_THREADS_ENV = "LLMGA_TEST_THREADS"


# Under pytest-xdist (make test: -n 2) every test module is one work unit, largest first, so the host and
# browser tiers are spread over the workers like the core tier. Each worker that runs a host or browser
# test starts its own ComfyUI server (comfy_server is session-scoped, i.e. one per worker process) on its
# own port and folders; the modules share nothing else. (A scheduler rather than xdist_group marks: pytest
# 9.2's node ids no longer take xdist 3.8's group suffix.)
# A module listed here is split into one work unit per test: its tests are independent and it alone would
# outlast the rest of a worker's share.
SPLIT_BY_TEST: frozenset[str] = frozenset()


def _xdist_scope(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    relative = path[len("tests/") :] if path.startswith("tests/") else path  # rootdir above tests/
    return nodeid if relative in SPLIT_BY_TEST else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """One scope per test module (per test for SPLIT_BY_TEST), largest first."""

        def _split_scope(self, nodeid: str) -> str:
            return _xdist_scope(nodeid)

    return ModuleScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """The suite's deterministic settings, set once for every tier."""
    threads = os.environ.get(TEST_THREADS_ENV, "1")
    torch.set_num_threads(int(threads))
    # The same for the processes the tests start (ComfyUI servers, in-process snippets, benches): with two
    # workers each driving a server, torch's default of one thread per core would put four on two cores.
    os.environ.setdefault("OMP_NUM_THREADS", threads)
    # CPU kernels are deterministic already; this makes a nondeterministic one (on an accelerator) say so.
    torch.use_deterministic_algorithms(True, warn_only=True)


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    return tiny_sd_models()


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[ComfyServer]:
    server = ComfyServer(
        root=tmp_path_factory.mktemp("comfy"),
        models=host_models(),
    )
    server.start()
    yield server
    server.stop()
    keep = ARTIFACTS / "host"
    keep.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # one server per xdist worker: one log each
    shutil.copy(server.log_path, keep / (f"comfyui-{worker}.log" if worker else "comfyui.log"))


@pytest.fixture(scope="session")
def comfy(comfy_server: ComfyServer) -> ComfyClient:
    return ComfyClient(comfy_server.url)


def png_bytes(width: int = 64, height: int = 64, seed: int = 0, mode: str = "RGB") -> bytes:
    """A deterministic test picture: smooth gradients plus a little seeded noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1), (x + y) * 127 / max(width + height, 1)])
    rgb = np.clip(rgb.transpose(1, 2, 0) + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB").convert(mode)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
