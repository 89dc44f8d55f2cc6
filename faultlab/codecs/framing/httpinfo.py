"""A cheap read of one whole HTTP/1.1 message's head: what matching and journaling need.

The proxy's HTTP framing hands toxics and the wire journal each message as its exact wire
bytes. Matching a request on method, path or a header, or journaling a response's status
and ``Retry-After``, needs only the head: this reads it with bytes operations (no h11
connection, no copy of the body), after h11 has already checked the grammar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["HttpHeadInfo", "parse_head", "retry_after_seconds"]

_MAX_HEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpHeadInfo:
    """The head of one message: a request (``method``, ``target``) or a response (``status``)."""

    method: str | None = None
    target: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-case names; a repeated header keeps its values joined by ``", "``."""
    head_size: int = 0
    """Bytes of the head, the blank line included; the body is what follows."""

    @property
    def path(self) -> str | None:
        """The target without its query string."""
        return None if self.target is None else self.target.split("?", 1)[0]

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_head(data: bytes) -> HttpHeadInfo | None:
    """The head of the HTTP message at the start of ``data``; ``None`` if it is not one."""
    end = data.find(b"\r\n\r\n", 0, _MAX_HEAD)
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    first = lines[0].split(b" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    size = end + 4
    if first[0].startswith(b"HTTP/"):
        if len(first) < 2 or not first[1].isdigit():
            return None
        return HttpHeadInfo(status=int(first[1]), headers=headers, head_size=size)
    if len(first) < 3 or not first[2].startswith(b"HTTP/"):
        return None
    return HttpHeadInfo(
        method=first[0].decode("latin-1"),
        target=first[1].decode("latin-1"),
        headers=headers,
        head_size=size,
    )


def retry_after_seconds(value: str | None, now_epoch: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds, or an HTTP date (RFC 9110 10.2.3).

    ``None`` when absent or unreadable; a date in the past is 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    import time

    now = time.time() if now_epoch is None else now_epoch
    return max(0.0, when.timestamp() - now)
