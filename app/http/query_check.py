"""Paths and query strings are checked once the caller is known (a request is answered 401 or
429 before 400 for them, and counted against its limit either way), before any handler reads
them. Refused with a 400:
- bytes that are not UTF-8 (servers would hand on replacement characters the client never
  sent) and the NUL character, which PostgreSQL cannot compare with its text;
- a query parameter the OpenAPI document does not declare for the route, as an unknown body
  field is (a misspelt filter must not silently widen a list);
- a parameter that takes one value given twice (which of the two would count?)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar.connection import ASGIConnection
from litestar.openapi.spec import OpenAPIType, Parameter
from litestar.types import Scope

from app.http.errors import validation_error

NUL = "\x00"
# A query parameter's name, and whether it may repeat (an array).
Declared = dict[str, bool]
# By (path template, method), for every app of this code alike; None for a route the document
# leaves out.
_DECLARED: dict[tuple[str, str], Declared | None] = {}


def check_request_target(scope: Scope) -> None:
    """A 400 ValidationError naming each problem of the request's path and query string."""
    if not scope["query_string"] and _plain(_raw_path(scope)):
        return
    query = list(ASGIConnection(scope).query_params.multi_items())
    problems = _text_problems(scope, query)
    if (declared := _declared_for(scope)) is not None:
        problems += _parameter_problems(query, declared)
    if problems:
        raise validation_error(problems)


def _declared_for(scope: Scope) -> Declared | None:
    key = (scope["path_template"], scope["method"].lower())
    if key not in _DECLARED:
        _DECLARED[key] = _declared_in_document(scope["app"], *key)
    return _DECLARED[key]


def path_rest(scope: Scope, after: str) -> str | None:
    """The path past the first `after` in it, as the client wrote it, percent-decoded once, a
    trailing `/` left out; None when the server gave no raw path. Routing reads the path
    decoded, where a `/` sent as %2F has become a separator and `a//b` is `a/b`."""
    raw = _raw_path(scope)
    if not raw:
        return None
    rest = raw.partition(after.encode())[2].removesuffix(b"/")
    return unquote_to_bytes(rest).decode()


def _raw_path(scope: Scope) -> bytes:
    # Some ASGI transports (httpx's) leave the query string on raw_path.
    return (scope.get("raw_path") or b"").partition(b"?")[0]


def _plain(raw_path: bytes) -> bool:
    """ASCII with nothing escaped and no NUL: valid UTF-8 and free of the NUL character."""
    return raw_path.isascii() and b"%" not in raw_path and b"\x00" not in raw_path


def _text_problems(scope: Scope, query: list[tuple[str, str]]) -> list[str]:
    raw = {"path": _raw_path(scope), "query": scope["query_string"]}
    problems = [f"{part}: not valid UTF-8" for part, text in raw.items() if not _utf8(text)]
    if NUL in scope["path"]:
        problems.append("path: must not contain the NUL character")
    problems += [
        f"{name}: must not contain the NUL character"
        for name, value in query
        if NUL in name + value
    ]
    return problems


def _parameter_problems(query: list[tuple[str, str]], declared: Declared) -> list[str]:
    given = Counter(name for name, _ in query)
    return [
        f"{name}: unknown query parameter"
        if name not in declared
        else f"{name}: given more than once"
        for name, times in given.items()
        if name not in declared or (times > 1 and not declared[name])
    ]


def _declared_in_document(app: Any, path: str, method: str) -> Declared | None:
    operation = getattr((app.openapi_schema.paths or {}).get(path), method, None)
    if operation is None:
        return None
    # Header parameters are references to the document's components (app.http.headers).
    return {
        p.name: getattr(p.schema, "type", None) == OpenAPIType.ARRAY
        for p in operation.parameters or ()
        if isinstance(p, Parameter) and p.param_in == "query"
    }


def _utf8(percent_encoded: bytes) -> bool:
    try:
        unquote_to_bytes(percent_encoded).decode()
    except UnicodeDecodeError:
        return False
    return True
