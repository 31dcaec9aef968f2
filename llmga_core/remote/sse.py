"""Server-sent events from a stream of byte chunks (both engines stream ``data: {json}`` events)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["MAX_EVENT_BYTES", "EventTooLarge", "sse_data"]

MAX_EVENT_BYTES = 1 << 20  # one token's event is ~1 KB; an image-free reply never needs more than this


class EventTooLarge(ValueError):
    """An event (or a line without its end) grew past the limit: the peer is not a sane engine."""


def sse_data(chunks: Iterable[bytes], max_event_bytes: int = MAX_EVENT_BYTES) -> Iterator[str]:
    """The ``data`` payload of each event, in order; multi-line data is joined with newlines.

    An event larger than ``max_event_bytes`` raises :class:`EventTooLarge` as soon as it is (memory stays
    bounded whatever the peer sends)."""
    buffer = b""
    data: list[str] = []
    size = 0
    for chunk in chunks:
        buffer += chunk
        if len(buffer) + size > max_event_bytes:
            raise EventTooLarge(f"an event of more than {max_event_bytes} bytes")
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8")
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
                    size = 0
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                size += len(raw)
            # "event:", "id:", "retry:" and ":" comments carry nothing the engines use here
    tail = buffer.rstrip(b"\r").decode("utf-8")
    if tail.startswith("data:"):
        data.append(tail[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)
