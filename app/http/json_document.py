"""What a JSON request body may hold, whatever command it carries: valid UTF-8, at most
MAX_DEPTH levels of nesting, no NUL character and no number a double cannot tell from infinity
or zero. Each is refused with a 400 up front; deeper down it would fail in Python's recursion
limit or in PostgreSQL, or be stored as something other than what was sent."""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from app.http.errors import ApiError, describe_decode_error, validation_error

T = TypeVar("T")

MAX_DEPTH = 32
# A string a body may hold, as a JSON Schema pattern: any without the NUL character.
NUL_FREE = r"^[^\u0000]*$"
NUMBERS = (
    "numbers must be integers of at most 4300 digits, or doubles: at most 1.8e308 in size and"
    " not so small that they round to 0"
)


def check_document(body: bytes) -> None:
    """Raise a 400 ApiError naming the problem when the body is no JSON the API can store."""
    try:
        document = _DECODER.decode(body)
    except RecursionError:
        raise _too_deep() from None
    except UnicodeDecodeError:
        raise validation_error(["body: not valid UTF-8"]) from None
    except msgspec.ValidationError:
        # Untyped, only a number can fail to validate; msgspec would name it by position only.
        raise validation_error([f"body: {NUMBERS}"]) from None
    except msgspec.MsgspecError as error:
        raise validation_error([describe_decode_error(error)]) from None
    # Both walks are spared where the text itself rules them out: a document nests no deeper
    # than it has brackets, and JSON can only write NUL as the escape \u0000.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and nesting_depth(document) > MAX_DEPTH:
        raise _too_deep()
    if b"\\u0000" in body and _holds_nul(document):
        raise validation_error(["body: strings must not contain the NUL character (\\u0000)"])


def nesting_depth(document: Any) -> int:
    """How many arrays and objects deep the document nests (0 for a scalar)."""
    depth, level = 0, [document]
    while level := [value for value in level if isinstance(value, dict | list)]:
        depth += 1
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
        ]
    return depth


def _double(literal: str) -> float:
    value = float(literal)
    significand = literal.lower().partition("e")[0]
    if math.isinf(value) or (value == 0 and significand.strip("+-0.")):
        raise ValueError(NUMBERS)
    return value


# Integers stay exact (PostgreSQL's numeric holds every one msgspec reads); other numbers are
# doubles, as JSON's interoperable subset has them.
_DECODER = msgspec.json.Decoder(float_hook=_double)


def decode_command(body: bytes, command_type: type[T]) -> T:
    """A document `check_document` passed, as a command. A number with a fraction or an
    exponent in a free-form field (metadata, agentReminders, ...) reads as jsonb will keep
    it: 9.15e16 and 1e2 are integers there, 1.50 is not. So the task a command leaves in
    memory, and the task view's JSON of it, is digit for digit the one a replay of the stored
    events folds to."""
    return _command_decoder(command_type).decode(body)


@functools.cache
def _command_decoder(command_type: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(command_type, float_hook=_as_jsonb_keeps)


def _as_jsonb_keeps(literal: str) -> int | float:
    # PostgreSQL's numeric keeps the digits after the point that the literal leaves after
    # its exponent is applied (none, when the exponent reaches past them), and has no -0.
    number = Decimal(literal)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(number)
    return float(literal) or 0.0


def _too_deep() -> ApiError:
    return validation_error([f"body: nested deeper than {MAX_DEPTH} levels"])


def _holds_nul(value: Any) -> bool:
    """PostgreSQL cannot store NUL in text or jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
