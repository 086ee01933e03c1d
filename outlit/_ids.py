"""Event ids: random version-4 UUID strings, made in bulk by the worker before the first send."""

from __future__ import annotations

import os

# Byte -> hex digit of its low four bits, and byte -> RFC 4122 variant digit (8, 9, a or b).
_HEX_DIGIT = bytes(b"0123456789abcdef"[b & 15] for b in range(256))
_VARIANT_DIGIT = bytes(b"89ab"[b & 3] for b in range(256))
_STRIDE = 37  # 36 characters of a UUID and a space that separates it from the next


def new_uuids(count: int) -> list[str]:
    """``count`` random RFC 4122 version-4 UUIDs as strings.

    The whole batch is laid out as one ASCII buffer, one random byte per hex digit, and the
    fixed characters (dashes, the version, the variant bits, separators) are written column by
    column with slice assignments; ``split()`` then cuts it into strings. Nothing runs per UUID
    at the Python level, which matters because the worker shares the GIL with the application.
    """
    if count <= 0:
        return []
    stride = _STRIDE
    raw = os.urandom(stride * count)
    buf = bytearray(raw).translate(_HEX_DIGIT)
    dashes = b"-" * count
    buf[8::stride] = dashes
    buf[13::stride] = dashes
    buf[18::stride] = dashes
    buf[23::stride] = dashes
    buf[14::stride] = b"4" * count
    # From the random bytes, not from their hex digits (whose low bits are not uniform).
    buf[19::stride] = raw[19::stride].translate(_VARIANT_DIGIT)
    buf[36::stride] = b" " * count
    return buf.decode("ascii").split()
