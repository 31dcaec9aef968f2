"""One LLMGA turn on a serving engine, streamed, cancellable, with errors that say what to check.

Every request streams. The response is read on the calling thread (so ``on_token`` runs where the
caller expects it); a small watcher thread polls ``should_stop`` and, when it turns true, shuts the
socket down. That wakes the blocked read at once and closes the connection, which both llama.cpp and
vLLM take as "cancel this request" (scale-out.md §1). ``timeout_s`` bounds every wait for bytes: the
connection, the first token (prompt processing included) and each later token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..mllm.generate import GenerationResult, TokenCallback
from .endpoint import DEFAULT_API_KEY_ENV, LLAMA_CPP, Endpoint
from .errors import RemoteCancelled, RemoteMLLMError
from .requests_body import completion_request, openai_chat_request
from .sse import EventTooLarge, sse_data

__all__ = ["RemoteMLLM"]

POLL_S = 0.05  # how often the watcher looks at should_stop
_ERROR_BODY_CHARS = 300
MAX_JSON_BYTES = 4 << 20  # /v1/models, /props: a few KB from a real engine
MAX_STREAM_BYTES = 64 << 20  # a whole streamed reply (4096 tokens at ~1 KB per event is 4 MB)
_LLAMA_STOP = {"eos": "eos", "word": "stop_string", "limit": "max_new_tokens"}
_OPENAI_STOP = {"length": "max_new_tokens", "stop": "eos"}


class _Watcher:
    """Shuts ``sock`` down once ``should_stop()`` is true: a blocked read returns at once."""

    def __init__(self, sock: socket.socket, should_stop: Callable[[], bool] | None) -> None:
        self.fired = False
        self._done = threading.Event()
        self._sock = sock
        self._should_stop = should_stop
        self._thread = threading.Thread(target=self._run, name="llmga-remote-cancel", daemon=True)
        if should_stop is not None:
            self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(POLL_S):
            if self._should_stop():  # type: ignore[misc]
                self.fired = True
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                return

    def close(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)


class RemoteMLLM:
    """A served LLMGA model. One request at a time per instance; each request has its own connection,
    so closing it cancels exactly that request."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        parts = urlsplit(endpoint.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path

    # ---------------------------------------------------------------- plumbing

    def _where(self) -> str:
        return f"{self.endpoint.engine} server at {self.endpoint.base_url}"

    def _connect(self) -> tuple[http.client.HTTPConnection, socket.socket]:
        connect_s = min(self.endpoint.timeout_s, 10.0)
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=connect_s, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect_s)
        try:
            conn.connect()
        except TimeoutError as err:
            raise RemoteMLLMError(
                f"The {self._where()} did not accept a connection within {connect_s:g} s: check the address "
                "and that the machine is reachable."
            ) from err
        except ssl.SSLError as err:
            raise RemoteMLLMError(
                f"TLS with the {self._where()} failed ({err.reason}): check its certificate and that the URL's "
                "scheme is right."
            ) from err
        except OSError as err:
            raise RemoteMLLMError(
                f"Could not connect to the {self._where()} ({err.strerror or err.__class__.__name__}): is the "
                "server running and the URL right (scheme, host, port, no /v1 suffix)?"
            ) from err
        sock: socket.socket = conn.sock  # type: ignore[assignment]  (set by connect())
        sock.settimeout(self.endpoint.timeout_s)  # every later wait: answer, first token, next token
        return conn, sock

    @contextlib.contextmanager
    def _exchange(
        self, method: str, path: str, body: Any = None, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[tuple[http.client.HTTPResponse, _Watcher]]:
        """Send one request; yield the (status-checked) response while the watcher guards the socket."""
        conn, sock = self._connect()
        watcher = _Watcher(sock, should_stop)
        headers = {"Accept": "application/json, text/event-stream", **self.endpoint.headers()}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            try:
                conn.request(method, self._prefix + path, body=data, headers=headers)
                response = conn.getresponse()
            except (http.client.HTTPException, OSError) as err:
                if watcher.fired:
                    raise RemoteCancelled from None
                raise self._transport_error(err, waiting="answer") from err
            if response.status >= 400:
                text = _error_text(response.read(64 * 1024))
                raise RemoteMLLMError(_status_message(response.status, self._where(), path, text), response.status)
            yield response, watcher
        finally:
            watcher.close()
            conn.close()

    def _transport_error(self, err: BaseException, waiting: str) -> RemoteMLLMError:
        if isinstance(err, TimeoutError):
            if waiting == "answer":
                return RemoteMLLMError(
                    f"The {self._where()} did not answer within {self.endpoint.timeout_s:g} s: it may be busy or "
                    "stuck; raise the timeout or check the server's log."
                )
            return RemoteMLLMError(
                f"The {self._where()} stopped sending tokens for {self.endpoint.timeout_s:g} s: it may be "
                "overloaded; raise the timeout or check the server's log."
            )
        return RemoteMLLMError(
            f"The connection to the {self._where()} broke off ({err.__class__.__name__}): check the server's log."
        )

    def _get_json(self, path: str, should_stop: Callable[[], bool] | None = None) -> Any:
        with self._exchange("GET", path, should_stop=should_stop) as (response, watcher):
            try:
                raw = response.read(MAX_JSON_BYTES + 1)
            except (http.client.HTTPException, OSError) as err:
                if watcher.fired:
                    raise RemoteCancelled from None
                raise self._transport_error(err, waiting="answer") from err
        if len(raw) > MAX_JSON_BYTES:
            raise RemoteMLLMError(
                f"The {self._where()} answered {path} with more than {MAX_JSON_BYTES >> 20} MB: is this the right "
                f"server and engine ({self.endpoint.engine})?"
            )
        try:
            return json.loads(raw)
        except ValueError as err:
            raise RemoteMLLMError(
                f"The {self._where()} answered {path} with something that is not JSON: is this the right engine "
                f"({self.endpoint.engine})?"
            ) from err

    # ---------------------------------------------------------------- checks

    def served_models(self, should_stop: Callable[[], bool] | None = None) -> list[str]:
        """Model ids (and aliases) from ``/v1/models``."""
        payload = self._get_json("/v1/models", should_stop)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise RemoteMLLMError(
                f"The {self._where()} answered /v1/models without a list of models ({_shape(payload)}): is this "
                f"an OpenAI-compatible server of the chosen engine ({self.endpoint.engine})?"
            )
        names: list[str] = []
        for entry in data:
            if not isinstance(entry, dict):
                continue  # entries of other shapes name no model
            if isinstance(entry.get("id"), str):
                names.append(entry["id"])
            aliases = entry.get("aliases")
            if isinstance(aliases, list):
                names.extend(a for a in aliases if isinstance(a, str))
        return [n for n in names if n]

    def check_model(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Raise a clear error when the server does not serve ``endpoint.model``."""
        names = list(dict.fromkeys(self.served_models(should_stop)))
        if self.endpoint.model not in names:
            raise RemoteMLLMError(
                f"The {self._where()} serves {', '.join(repr(n) for n in names) or 'no model'}, not "
                f"{self.endpoint.model!r}: set the model name to one of these (llama-server --alias, "
                "vllm serve --served-model-name)."
            )

    def llama_props(self, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        props = self._get_json("/props", should_stop)
        if not isinstance(props, dict):
            raise RemoteMLLMError(
                f"The {self._where()} gave no /props object ({_shape(props)}): is it llama.cpp's server?"
            )
        # only well-typed fields are used: a field of another type counts as absent
        kept = {k: v for k, v in props.items() if k in ("media_marker", "eos_token") and isinstance(v, str)}
        modalities = props.get("modalities")
        if isinstance(modalities, dict):
            kept["modalities"] = {"vision": modalities.get("vision") is True}
        return kept

    # ---------------------------------------------------------------- generation

    def generate(
        self,
        prompt: str,
        settings: Any,
        *,
        image_png: bytes | None = None,
        stop_strings: Sequence[str] = (),
        on_token: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> GenerationResult:
        """Run one turn. ``prompt`` is the rendered LLMGA prompt (``<image>`` where the image goes)."""
        start = time.perf_counter()
        self.check_model(should_stop)
        props: dict[str, Any] = {}
        if self.endpoint.engine == LLAMA_CPP:
            props = self.llama_props(should_stop)
            if image_png is not None and not (props.get("modalities") or {}).get("vision"):
                raise RemoteMLLMError(
                    f"The {self._where()} has no vision projector loaded: start it with --mmproj mmproj.gguf "
                    "(written by `python -m llmga_core.export gguf`)."
                )
            body = completion_request(
                prompt,
                settings,
                media_marker=str(props.get("media_marker", "<__media__>")),
                image_png=image_png,
                stop=stop_strings,
            )
            path = "/completion"
        else:
            body = openai_chat_request(self.endpoint.model, prompt, settings, image_png=image_png, stop=stop_strings)
            path = "/v1/chat/completions"
        probe_s = time.perf_counter() - start
        result = GenerationResult([], "", "max_new_tokens", 0, extra={"probe_s": probe_s})
        limit = int(settings.max_new_tokens)
        finished = False  # the engine's own end of reply (stop event / finish_reason) was seen
        with self._exchange("POST", path, body, should_stop) as (response, watcher):
            try:
                for data in sse_data(_capped(response, MAX_STREAM_BYTES)):
                    if data.strip() == "[DONE]":
                        break
                    event = self._decode_event(data)
                    pieces = len(result.token_ids), len(result.text)
                    try:
                        if self.endpoint.engine == LLAMA_CPP:
                            done = self._llama_event(event, result, props)
                        else:
                            done = self._openai_event(event, result)
                    except (TypeError, ValueError, AttributeError) as err:
                        raise RemoteMLLMError(
                            f"The {self._where()} streamed an event of an unexpected shape ({type(err).__name__}): "
                            f"is the engine setting right ({self.endpoint.engine})?"
                        ) from None
                    finished = finished or done or bool(result.extra.get("finish_reason"))
                    self._count(result, pieces)
                    if not done and result.extra["generated"] > limit:  # the server ignores max_new_tokens
                        self._cut(result, limit)
                        finished = True
                        break
                    if result.first_token_s is None and (result.text or result.token_ids):
                        result.first_token_s = time.perf_counter() - start
                    if on_token is not None and not done:
                        on_token(result.token_ids[-1] if result.token_ids else -1, result.text)
                    if done:
                        break
            except EventTooLarge as err:
                raise RemoteMLLMError(
                    f"The {self._where()} sent {err}; a real engine streams small events: is this the right server?"
                ) from None
            except (http.client.HTTPException, OSError, UnicodeDecodeError) as err:
                if watcher.fired:
                    raise RemoteCancelled from None
                raise self._transport_error(err, waiting="tokens") from err
            if watcher.fired:
                raise RemoteCancelled
        if not finished:
            raise RemoteMLLMError(
                f"The {self._where()} ended the reply without its end-of-reply event after {len(result.text)} "
                "characters, so the reply may be cut short: check the server's log (it may have crashed or been "
                "restarted) and run the prompt again."
            )
        for key in ("finish_reason", "generated", "ends"):
            result.extra.pop(key, None)
        result.total_s = time.perf_counter() - start
        return result

    @staticmethod
    def _count(result: GenerationResult, before: tuple[int, int]) -> None:
        """Tokens generated so far: the ids the event carried, else one per event that added text."""
        ids, chars = before
        added = len(result.token_ids) - ids or (1 if len(result.text) > chars else 0)
        result.extra["generated"] = result.extra.get("generated", 0) + added
        result.extra.setdefault("ends", []).append((len(result.token_ids), len(result.text)))

    @staticmethod
    def _cut(result: GenerationResult, limit: int) -> None:
        """Keep the reply as it was after ``limit`` tokens (one event per token, or ids per event)."""
        ends = result.extra.pop("ends")
        total = 0
        keep = (0, 0)
        for n, (ids, chars) in enumerate(ends):
            step = ids - (ends[n - 1][0] if n else 0) or 1
            if total + step > limit:
                break
            total += step
            keep = (ids, chars)
        del result.token_ids[keep[0] :]
        result.text = result.text[: keep[1]]
        result.stop_reason = "max_new_tokens"

    def _decode_event(self, data: str) -> dict[str, Any]:
        try:
            event = json.loads(data)
        except ValueError as err:
            raise RemoteMLLMError(f"The {self._where()} streamed something that is not JSON: {data[:100]!r}.") from err
        if not isinstance(event, dict):
            raise RemoteMLLMError(f"The {self._where()} streamed an unexpected event: {data[:100]!r}.")
        error = event.get("error")
        if error:
            message = error.get("message", error) if isinstance(error, dict) else error
            code = error.get("code") if isinstance(error, dict) else None
            raise RemoteMLLMError(
                f"The {self._where()} failed mid-answer: {str(message)[:_ERROR_BODY_CHARS]}",
                code if isinstance(code, int) else None,
            )
        return event

    @staticmethod
    def _llama_event(event: dict[str, Any], result: GenerationResult, props: dict[str, Any]) -> bool:
        result.text += str(event.get("content", ""))
        result.token_ids.extend(int(t) for t in event.get("tokens", []) or [])
        if not event.get("stop"):
            return False
        kind = str(event.get("stop_type", "limit"))
        result.stop_reason = _LLAMA_STOP.get(kind, "max_new_tokens")
        # Keep the reply as the local path decodes it (end token / stop string included): LLMGA stores
        # that raw text in the conversation, so later turns see the same prompt.
        if kind == "word":
            result.text += str(event.get("stopping_word", ""))
        elif kind == "eos":
            result.text += str(props.get("eos_token", ""))
        result.prompt_length = int(event.get("tokens_evaluated", 0) or 0)
        result.extra["tokens_predicted"] = int(event.get("tokens_predicted", 0) or 0)
        result.extra["timings"] = event.get("timings", {})
        return True

    @staticmethod
    def _openai_event(event: dict[str, Any], result: GenerationResult) -> bool:
        choices = event.get("choices") or []
        if not choices:
            usage = event.get("usage") or {}
            result.prompt_length = int(usage.get("prompt_tokens", 0) or result.prompt_length)
            return False
        choice = choices[0]
        result.text += str((choice.get("delta") or {}).get("content") or "")
        ids = choice.get("token_ids")
        if ids:
            result.token_ids.extend(int(t) for t in ids)
        finish = choice.get("finish_reason")
        if not finish:
            return False
        result.extra["finish_reason"] = str(finish)
        result.stop_reason = _OPENAI_STOP.get(str(finish), "eos")
        if finish == "stop" and isinstance(choice.get("stop_reason"), str):
            result.stop_reason = "stop_string"
        return False  # the server still sends usage and [DONE]


def _capped(response: http.client.HTTPResponse, limit: int) -> Iterator[bytes]:
    """The response's chunks as they arrive, failing once more than ``limit`` bytes came."""
    total = 0
    while chunk := response.read1(65536):
        total += len(chunk)
        if total > limit:
            raise EventTooLarge(f"a reply of more than {limit >> 20} MB")
        yield chunk


def _shape(payload: Any) -> str:
    """What a JSON answer was, for a message (never its content: it may be large or hostile)."""
    if isinstance(payload, dict):
        return f"an object with keys {', '.join(sorted(map(str, payload))[:5]) or 'none'}"
    return f"a JSON {type(payload).__name__}"


def _error_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:_ERROR_BODY_CHARS].strip()
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:_ERROR_BODY_CHARS]
    return str(payload)[:_ERROR_BODY_CHARS]


def _status_message(status: int, where: str, path: str, body: str) -> str:
    said = f" It said: {body}" if body else ""
    if status in (401, 403):
        hint = (
            "it refused the API key: put the key in the environment variable the node names (default "
            f"{DEFAULT_API_KEY_ENV}) in the environment ComfyUI runs in, and restart ComfyUI."
        )
    elif status == 404:
        hint = (
            f"it has no {path}: is the engine setting right (llama.cpp vs vLLM) and the URL the server's base, "
            "without /v1?"
        )
    elif status == 400:
        hint = "it rejected the request: check the model name and that the model takes images (mmproj/vision)."
    elif status == 503:
        hint = "it is not ready (still loading the model?): try again in a moment."
    elif status >= 500:
        hint = "it failed internally: see the server's log."
    else:
        hint = "see the server's log."
    return f"HTTP {status} from the {where}: {hint}{said}"
