"""Request headers read straight off the ASGI scope: Litestar's request builds a header map
anew each time its headers are asked for, a cost a hot path pays on every request."""

from __future__ import annotations

from litestar.types import Scope


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header `name` (lower case, as ASGI gives names), if sent,
    without the blanks around it, which are no part of a field's value (RFC 9110, 5.5) and
    which the server passes on as they came."""
    for sent, value in scope["headers"]:
        if sent == name:
            return value.decode("latin-1").strip(" \t")
    return None
