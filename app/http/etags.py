"""Versions as entity tags: every response that carries a task carries its ETag, reads
honour If-None-Match and writes honour If-Match."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from app.http.headers import header as scope_header

ANY = "*"
_TAG = re.compile(r'^\s*(?:W/)?"(\d{1,10})"\s*$')
# Matches no version: an If-Match that names none can only fail.
NO_VERSION = -1


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(request: Request[Any, Any, Any]) -> int | None:
    """The version If-Match requires; None when the request does not ask."""
    header = scope_header(request.scope, b"if-match")
    if header is None or header.strip() == ANY:
        return None
    match = _TAG.match(header)
    return int(match[1]) if match else NO_VERSION


def not_modified(request: Request[Any, Any, Any], version: int) -> bool:
    """If-None-Match names the current version (or any)."""
    header = scope_header(request.scope, b"if-none-match")
    if header is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return ANY in tags or etag(version) in tags
