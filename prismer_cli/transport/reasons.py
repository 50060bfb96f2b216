"""Library exceptions in a few words, at the transport's edge (docs/cli.md "Hygiene").

requests wraps urllib3, which wraps the socket error, and each adds its own text
(`HTTPConnectionPool(host=..., port=...): Max retries exceeded ...`, `('Connection broken:
IncompleteRead(0 bytes read)', ...)`). `reason(exc, host)` walks the chain down to the cause and
says it plainly: "connection refused", "timed out", "connection reset", "cannot resolve HOST",
"TLS error: ...". Messages carry no prefix of their own ("cannot connect", "connection lost"):
the caller says which it was, once.
"""

from __future__ import annotations

import errno
import socket
import sys

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by the peer",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by the peer",
    errno.ETIMEDOUT: "timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ENETDOWN: "network down",
    errno.EADDRNOTAVAIL: "address not available",
}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: __cause__, __context__, urllib3's `reason`, and the
    exceptions requests passes as its first argument."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 12:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        inner = [getattr(current, "reason", None), current.__cause__, current.__context__]
        inner += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        todo += [i for i in inner if isinstance(i, BaseException)]
    return seen


def reason(exc: BaseException, host: str | None = None) -> str:
    """A few plain words for a network failure (module docstring)."""
    chain = _chain(exc)
    names = " ".join(type(e).__name__ for e in chain)
    ssl = sys.modules.get("ssl")  # not loaded: no TLS was attempted (transport/wsupgrade.py)
    for e in chain:
        if isinstance(e, socket.gaierror) or "NameResolution" in type(e).__name__:
            return f"cannot resolve {host or 'the server name'} (DNS)"
        if ssl is not None and isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS error: {e.verify_message or 'certificate verify failed'}"
        if ssl is not None and isinstance(e, ssl.SSLError):
            return f"TLS error: {e.reason or type(e).__name__}"
    for e in chain:
        if isinstance(e, (TimeoutError, socket.timeout)) or "Timeout" in type(e).__name__:
            return "timed out"
        if isinstance(e, OSError) and e.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[e.errno]
    if "IncompleteRead" in names or "Connection broken" in str(exc) or "ProtocolError" in names:
        return "connection closed by the peer mid-response"
    for e in chain:
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
    text = str(exc).strip() or type(exc).__name__
    return text if "Pool(" not in text and not text.startswith("(") else type(exc).__name__
