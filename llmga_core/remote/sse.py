"""Server-sent events from a stream of byte chunks (both engines stream ``data: {json}`` events)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["sse_data"]


def sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """The ``data`` payload of each event, in order; multi-line data is joined with newlines."""
    buffer = b""
    data: list[str] = []
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8")
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            # "event:", "id:", "retry:" and ":" comments carry nothing the engines use here
    tail = buffer.rstrip(b"\r").decode("utf-8")
    if tail.startswith("data:"):
        data.append(tail[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)
