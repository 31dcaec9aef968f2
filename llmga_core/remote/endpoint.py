"""Where the engine is and how to talk to it: URL checks (HTTPS unless loopback) and the API key."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import LLMGAInputError

__all__ = [
    "ALLOWED_KEY_ENVS_SETTING",
    "DEFAULT_API_KEY_ENV",
    "ENGINES",
    "KEY_ENV_PREFIX",
    "LLAMA_CPP",
    "VLLM",
    "Endpoint",
    "api_key_from_env",
    "parse_endpoint",
]

LLAMA_CPP = "llama.cpp"
VLLM = "vllm"
ENGINES = (LLAMA_CPP, VLLM)
DEFAULT_API_KEY_ENV = "LLMGA_REMOTE_API_KEY"
# A workflow names the variable its key comes from; it may name only these, so a shared workflow cannot
# send another secret of the server (a cloud key, a database password) to a server its author owns.
KEY_ENV_PREFIX = "LLMGA_"
ALLOWED_KEY_ENVS_SETTING = "LLMGA_ALLOWED_KEY_ENVS"  # the admin's extra names, comma-separated, outside workflows


@dataclass(frozen=True)
class Endpoint:
    """A checked engine address. ``api_key`` never appears in ``repr`` (it ends up in logs)."""

    base_url: str  # scheme://host[:port][/prefix], no trailing slash
    engine: str
    model: str
    timeout_s: float = 120.0
    api_key: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """The key travels only encrypted or to this machine (parse_endpoint refuses the rest too)."""
        parts = urlsplit(self.base_url)
        safe = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key and safe else {}


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(url: str, engine: str, model: str, timeout_s: float = 120.0, api_key: str | None = None) -> Endpoint:
    """Check ``url`` and the other settings; plain HTTP is accepted only for this machine."""
    if engine not in ENGINES:
        raise LLMGAInputError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    text = url.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # parsed lazily: "port out of range" and "not a number" show here
    except ValueError as err:
        raise LLMGAInputError(
            f"The endpoint {url!r} is not a valid URL ({err}): write it like http://127.0.0.1:8080 or "
            "https://llmga.example.com (IPv6 in brackets, e.g. http://[::1]:8080; ports 1-65535)."
        ) from None
    if parts.port == 0:
        raise LLMGAInputError(f"The endpoint {url!r} has port 0: use the port the server listens on (1-65535).")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LLMGAInputError(
            f"The endpoint {url!r} is not an http(s) URL: use e.g. http://127.0.0.1:8080 for a server on this "
            "machine or https://llmga.example.com for another one."
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise LLMGAInputError(
            "Put only scheme, host, port and path in the endpoint: no query, fragment or credentials "
            "(the API key comes from an environment variable)."
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise LLMGAInputError(
            f"The endpoint {url!r} uses plain http to another machine: prompts, images and the API key would "
            "travel unencrypted. Serve it over https (e.g. behind a reverse proxy), or run the engine on "
            "this machine (127.0.0.1)."
        )
    if not model.strip():
        raise LLMGAInputError("The model name is empty: type the name the engine serves (its /v1/models id).")
    if not timeout_s > 0:
        raise LLMGAInputError("The timeout must be positive (seconds).")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    return Endpoint(base, engine, model.strip(), float(timeout_s), api_key)


def allowed_key_envs(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The names the server's admin allows besides ``LLMGA_*`` (``LLMGA_ALLOWED_KEY_ENVS``)."""
    listed = (os.environ if environ is None else environ).get(ALLOWED_KEY_ENVS_SETTING, "")
    return frozenset(n.strip() for n in listed.split(",") if n.strip())


def api_key_from_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key in environment variable ``name`` (empty name or unset: no key).

    Only ``LLMGA_*`` names and those listed in ``LLMGA_ALLOWED_KEY_ENVS`` (set where ComfyUI starts,
    never in a workflow) may be read.
    """
    env = os.environ if environ is None else environ
    name = name.strip()
    if not name:
        return None
    if not name.isascii() or not name.replace("_", "").isalnum():
        raise LLMGAInputError(f"{name!r} is not an environment variable name (letters, digits and _).")
    allowed = name.startswith(KEY_ENV_PREFIX) and name != ALLOWED_KEY_ENVS_SETTING
    if not (allowed or name in allowed_key_envs(env)):
        raise LLMGAInputError(
            f"api_key_env names {name!r}, which this server does not allow: a workflow may read an API key only "
            f"from an environment variable whose name starts with {KEY_ENV_PREFIX} (e.g. {DEFAULT_API_KEY_ENV}), "
            "so that a shared workflow cannot send another secret to its author's server. Put the key in "
            f"{DEFAULT_API_KEY_ENV}, or (server admins) list the name in {ALLOWED_KEY_ENVS_SETTING} in ComfyUI's "
            "environment."
        )
    return env.get(name) or None
