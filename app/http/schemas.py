"""The schemas of the OpenAPI document, as msgspec describes the types it decodes requests into
and encodes responses from. Litestar's own schemas drop what a generated client needs: the
rules of nested types (a tag's length, metadata's keys, unknown fields refused) and the
difference between a field a client may leave out and one the API always sends.

A request's schema is what msgspec decodes, with the rule json_document applies to any body
(no NUL character) and the years a time may be written in; the query and path parameters keep
to the same. A response's schema has every field
required, since msgspec writes every one, nullable where it may be null, and its times RFC
3339 date-times, since the API writes them in UTC. A type requests and responses share has a
schema for each where the two differ, named as pydantic names them (LinkedEntity-Input,
LinkedEntity-Output)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from app.http.json_document import NUL_FREE
from domain.commands import YEARS_PATTERN

REF = "#/components/schemas/{name}"
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else", "propertyNames")
_TIMES = ("date-time", "date")


def component_schemas(
    requests: Iterable[type], responses: Iterable[type], rules: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The document's schemas: of the request bodies `requests`, each with the `rules` its
    name has (JSON Schema keywords for what its fields cannot say alone), and of the
    `responses`."""
    _, read = msgspec.json.schema_components(requests, ref_template=REF)
    decoded = {name: {**as_request(schema), **rules.get(name, {})} for name, schema in read.items()}
    response_types = list(responses)
    structs = _structs(response_types)
    _, written = msgspec.json.schema_components(response_types, ref_template=REF)
    encoded = {name: _as_response(schema, structs.get(name)) for name, schema in written.items()}
    shared = {name for name in decoded.keys() & encoded.keys() if decoded[name] != encoded[name]}
    return {**_renamed(encoded, shared, "Output"), **_renamed(decoded, shared, "Input")}


def as_request(schema: Any) -> Any:
    """`schema` as a request must keep to it: strings without NUL, times written in their
    years. A free-form object's keys hold no NUL either, and what it nests is any JSON: the
    rules on nested values (no NUL, 32 levels at most) are in the document's description,
    since only a recursive schema could state them, and generated clients cannot read one."""
    if isinstance(schema, list):
        return [as_request(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _subschemas(key, value, as_request) for key, value in schema.items()}
    if schema.get("format") in _TIMES:
        schema.setdefault("pattern", YEARS_PATTERN)
    elif schema.get("type") == "string" and not schema.keys() & {
        "pattern",
        "enum",
        "const",
        "anyOf",
        "oneOf",
    }:
        schema["pattern"] = NUL_FREE
    elif schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        schema["propertyNames"] = {"pattern": NUL_FREE}
    elif schema.get("type") == "array":
        schema.setdefault("items", {})
    return schema


def _subschemas(key: str, value: Any, transform: Callable[[Any], Any]) -> Any:
    if key == "properties":
        return {name: transform(schema) for name, schema in value.items()}
    if key in _SUBSCHEMA_LISTS or key in _SUBSCHEMAS:
        return transform(value)
    return value


def _structs(types: Iterable[type]) -> dict[str, msgspec.inspect.StructType]:
    """Every Struct type among `types` and within them, by schema name."""
    found: dict[str, msgspec.inspect.StructType] = {}

    def visit(info: msgspec.inspect.Type) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls.__name__ in found:
                return
            found[info.cls.__name__] = info
            for field in info.fields:
                visit(field.type)
        for name in ("types", "item_type", "key_type", "value_type", "item_types"):
            inner = getattr(info, name, None)
            for item in inner if isinstance(inner, tuple) else [inner]:
                if isinstance(item, msgspec.inspect.Type):
                    visit(item)

    for info in msgspec.inspect.multi_type_info(list(types)):
        visit(info)
    return found


def _as_response(schema: dict[str, Any], struct: msgspec.inspect.StructType | None) -> Any:
    """A Struct's schema as the API writes it: every field there (unless it omits defaults),
    with no default, its times date-times. (Unknown fields are refused on the way in: that is
    no promise that an answer never gains one.)"""
    if struct is None:
        return schema
    schema = {key: value for key, value in schema.items() if key != "additionalProperties"}
    properties = {}
    for field in struct.fields:
        written = dict(schema["properties"][field.encode_name])
        written.pop("default", None)
        if _is_time(field.type):
            written = _with_time_format(written)
        properties[field.encode_name] = written
    required = list(properties)
    if struct.cls.__struct_config__.omit_defaults:
        required = schema.get("required", [])
    return {**schema, "properties": properties, "required": required}


def _is_time(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_time(item) for item in info.types)
    return isinstance(info, msgspec.inspect.DateTimeType)


def _with_time_format(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "string":
        return {**schema, "format": "date-time"}
    if "anyOf" in schema:
        return {**schema, "anyOf": [_with_time_format(item) for item in schema["anyOf"]]}
    return schema


def _renamed(schemas: dict[str, Any], names: set[str], suffix: str) -> dict[str, Any]:
    """`schemas` with each of `names` (and every reference to it) given `suffix`."""
    if not names:
        return schemas
    targets = {REF.format(name=name): REF.format(name=f"{name}-{suffix}") for name in names}

    def rename(value: Any) -> Any:
        if isinstance(value, list):
            return [rename(item) for item in value]
        if isinstance(value, dict):
            return {
                key: targets.get(item, item) if key == "$ref" else rename(item)
                for key, item in value.items()
            }
        return value

    renamed = {name: f"{name}-{suffix}" for name in names}
    return {
        renamed.get(name, name): {**rename(schema), "title": renamed[name]}
        if name in renamed
        else rename(schema)
        for name, schema in schemas.items()
    }
