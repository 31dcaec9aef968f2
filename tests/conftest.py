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


# The host and browser tiers share one ComfyUI server per test process (comfy_server below). Under
# pytest-xdist (make test: -n 2) they form one work unit that runs on one worker, in collection order, with
# one server, while the core tier's modules are spread over the workers. (A scheduler rather than
# xdist_group marks: pytest 9.2's node ids no longer take xdist 3.8's group suffix.)
HOST_TIERS = ("host", "e2e")


def _xdist_scope(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if parts[0] == "tests":  # rootdir above tests/
        parts = parts[1:]
    return "comfy" if parts and parts[0] in HOST_TIERS else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class OneServerScheduling(LoadScopeScheduling):
        """Scopes: one for the host and browser tiers, one per core test module (largest first)."""

        def _split_scope(self, nodeid: str) -> str:
            return _xdist_scope(nodeid)

    return OneServerScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """The suite's deterministic settings, set once for every tier."""
    torch.set_num_threads(int(os.environ.get(TEST_THREADS_ENV, "1")))
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
    shutil.copy(server.log_path, keep / "comfyui.log")


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
