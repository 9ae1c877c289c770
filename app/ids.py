"""The service's one id generator: 24 lowercase hex characters, ordered by creation time.

The layout is MongoDB's ObjectId (4 bytes of seconds, 5 random bytes per process, a 3-byte
counter), so ids sort by time like the reference's example and never collide across workers.
"""

import itertools
import os
import re
import time

_process_bytes = os.urandom(5)
_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))

ID_PATTERN = re.compile(r"[0-9a-f]{24}")


def new_id() -> str:
    count = next(_counter) & 0xFFFFFF
    raw = int(time.time()).to_bytes(4, "big") + _process_bytes + count.to_bytes(3, "big")
    return raw.hex()


def is_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None
