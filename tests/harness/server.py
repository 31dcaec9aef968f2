"""Start and stop a real ComfyUI server for the tests, isolated in a temporary base directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures.cache import REPO_ROOT

from .host import comfyui_dir

PACK_FOLDER = "ComfyUI-LLMGA"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ComfyServer:
    """A ComfyUI process with its own base dir, models dir, database and log file."""

    root: Path
    # folder type -> a directory to expose as is, or a list of files to expose together
    models: dict[str, Path | list[Path]] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    # the ComfyUI tree to run; None: the test host (comfyui_dir())
    comfyui: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tree(self) -> Path:
        return self.comfyui or comfyui_dir()

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def log_path(self) -> Path:
        return self.root / "comfyui.log"

    def _prepare(self) -> list[str]:
        custom_nodes = self.base / "custom_nodes"
        for sub in ("custom_nodes", "input", "output", "temp", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        link = custom_nodes / PACK_FOLDER
        if not link.exists():
            link.symlink_to(REPO_ROOT, target_is_directory=True)
        lines = ["llmga_tests:", f"  base_path: {self.root / 'models'}"]
        (self.root / "models").mkdir(exist_ok=True)
        for folder_type, source in self.models.items():
            target = self.root / "models" / folder_type
            if isinstance(source, list):
                target.mkdir(exist_ok=True)
                for file in source:
                    if not (target / file.name).exists():
                        (target / file.name).symlink_to(file)
            elif not target.exists():
                target.symlink_to(source, target_is_directory=True)
            lines.append(f"  {folder_type}: {folder_type}")
        extra = self.root / "extra_model_paths.yaml"
        extra.write_text("\n".join(lines) + "\n")
        self.port = self.port or free_port()
        return [
            sys.executable,
            str(self.tree / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--disable-api-nodes",
            "--base-directory",
            str(self.base),
            "--extra-model-paths-config",
            str(extra),
            "--database-url",
            f"sqlite:///{self.root / 'comfy.db'}",
            *self.extra_args,
        ]

    def start(self, timeout: float = 120.0) -> None:
        command = self._prepare()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.tree, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/system_stats", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
