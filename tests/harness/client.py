"""A small HTTP client for a running ComfyUI: queue API-format prompts, wait, read history and outputs."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any


class PromptRejected(AssertionError):
    """POST /prompt answered 400: validation failed before anything ran."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        super().__init__(f"prompt rejected: {json.dumps(body, indent=1)[:4000]}")


@dataclass
class Run:
    """One finished prompt as /history reports it."""

    prompt_id: str
    entry: dict[str, Any]

    @property
    def status(self) -> str:
        return self.entry.get("status", {}).get("status_str", "")

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return self.entry.get("outputs", {})

    @property
    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        return [(kind, data) for kind, data in self.entry.get("status", {}).get("messages", [])]

    def error(self) -> dict[str, Any] | None:
        """The execution_error message (node_id, node_type, exception_type, exception_message…), if any."""
        for kind, data in self.messages:
            if kind == "execution_error":
                return data
        return None

    def describe_error(self) -> str:
        err = self.error()
        if err is None:
            return f"status {self.status!r}, messages {[k for k, _ in self.messages]}"
        trace = "".join(err.get("traceback", []))[-3000:]
        return (
            f"node {err.get('node_id')} ({err.get('node_type')}) raised {err.get('exception_type')}: "
            f"{err.get('exception_message')}\n{trace}"
        )


class ComfyClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.client_id = uuid.uuid4().hex

    def _request(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def get_json(self, path: str) -> Any:
        return json.loads(self._request(path))

    def post_json(self, path: str, body: Any) -> Any:
        raw = self._request(path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        return json.loads(raw) if raw else None

    def object_info(self, node: str | None = None) -> dict[str, Any]:
        info = self.get_json("/object_info" + (f"/{node}" if node else ""))
        return info[node] if node else info

    def queue(self, prompt: dict[str, Any], extra_data: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        try:
            return self.post_json("/prompt", body)["prompt_id"]
        except urllib.error.HTTPError as err:
            if err.code == 400:
                raise PromptRejected(json.loads(err.read())) from None
            raise

    def wait(self, prompt_id: str, timeout: float = 300.0) -> Run:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                if entry["status"].get("status_str") in ("success", "error"):
                    return Run(prompt_id, entry)
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def run(self, prompt: dict[str, Any], timeout: float = 300.0, expect_error: bool = False) -> Run:
        """Queue, wait, and (unless expect_error) fail with the node's own message if it errored."""
        result = self.wait(self.queue(prompt), timeout)
        if expect_error:
            assert result.status == "error", f"expected an error, got {result.status}"
        else:
            assert result.status == "success", result.describe_error()
        return result

    def view(self, image: dict[str, str]) -> bytes:
        query = urllib.parse.urlencode(
            {
                "filename": image["filename"],
                "subfolder": image.get("subfolder", ""),
                "type": image.get("type", "output"),
            }
        )
        return self._request(f"/view?{query}")

    def view_image(self, image: dict[str, str]) -> Any:
        from PIL import Image

        return Image.open(io.BytesIO(self.view(image)))

    def upload_image(self, name: str, png: bytes) -> str:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n".encode(),
            png,
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n'
            f"--{boundary}--\r\n".encode(),
        ]
        raw = self._request(
            "/upload/image", b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        return json.loads(raw)["name"]

    def interrupt(self) -> None:
        self._request("/interrupt", b"{}", {"Content-Type": "application/json"})
