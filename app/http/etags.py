"""Versions as entity tags (RFC 9110 §8.8.3): every response that carries a task carries its
ETag, reads honour If-None-Match and writes honour If-Match."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from app.http.errors import validation_error
from app.http.request_headers import header as read_header

IF_MATCH = "If-Match"
IF_NONE_MATCH = "If-None-Match"
ANY = "*"
# etagc: a visible ASCII character other than the double quote (obsolete text left out).
_ENTITY_TAG = r'(?:W/)?"[!#-~]*"'
# What both headers may hold: "*", or a list of entity tags separated by commas, whose
# elements a recipient takes even empty (RFC 9110 §5.6.1): an empty value names no tag.
_ELEMENT = rf"[ \t]*(?:{_ENTITY_TAG}[ \t]*)?"
TAG_LIST = rf"^(?:\*|{_ELEMENT}(?:,{_ELEMENT})*)$"
_TAG_LIST = re.compile(TAG_LIST)
_TAG = re.compile(r'(W/)?"([!#-~]*)"')
# An opaque tag that names a version: a version is never written with leading zeros.
_VERSION = re.compile(r"0|[1-9][0-9]{0,17}")


def etag(version: int) -> str:
    return f'"{version}"'


def expected_versions(request: Request[Any, Any, Any]) -> frozenset[int] | None:
    """The versions If-Match accepts, any one of them (RFC 9110 §13.1.1); None when the
    request does not ask. A weak tag matches no version: If-Match compares strongly."""
    value = _tag_list(request, IF_MATCH)
    if value is None or value == ANY:
        return None
    strong = [opaque for weak, opaque in _TAG.findall(value) if not weak]
    return frozenset(int(opaque) for opaque in strong if _VERSION.fullmatch(opaque))


def not_modified(request: Request[Any, Any, Any], version: int) -> bool:
    """If-None-Match names the current version, weak or strong, or any."""
    value = _tag_list(request, IF_NONE_MATCH)
    if value is None:
        return False
    return value == ANY or any(opaque == str(version) for _, opaque in _TAG.findall(value))


def _tag_list(request: Request[Any, Any, Any], header: str) -> str | None:
    """The header's value, None when absent. One that is neither "*" nor a list of entity tags
    is refused (400) rather than read as naming no version."""
    value = read_header(request.scope, header.lower().encode())
    if value is not None and not _TAG_LIST.fullmatch(value):
        raise validation_error([f'{header}: expected "*" or entity tags such as "3", "4"'])
    return value
