"""Turn queued events into strict JSON bytes, whatever the caller put in their properties.

Runs in the background worker. :func:`encode_body` hands a whole batch to orjson (when
installed) or the stdlib encoder in one call; when that fails, the worker uses
:func:`encode_event` per event, whose fast path is the same encoder and which, only when that
fails (NaN, a lone surrogate, an odd key, a cycle), walks and sanitizes the event. The result
is always strict JSON (no NaN/Infinity literals) in UTF-8.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._log import get_logger

logger = get_logger("outlit")

_MAX_DEPTH = 32
_MAX_INT_BITS = 4000  # well under the 4300-digit limit of int -> str conversion

_orjson: Any
try:  # optional speed-up: pip install "outlit[speedups]"
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when orjson is absent
    _orjson = None


def _convert(value: Any) -> Any:
    """JSON-able form of a value the encoders do not know natively; raise TypeError otherwise."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if value.is_finite():
            # Integral decimals stay ints; others become floats, as JSON has only numbers.
            return int(value) if value == value.to_integral_value() else float(value)
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    for method in ("model_dump", "dict", "to_dict", "__json__"):
        fn = getattr(value, method, None)
        if callable(fn) and not isinstance(value, type):
            try:
                result = fn(mode="json") if method == "model_dump" else fn()
            except TypeError:
                result = fn()
            return result
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _sanitize(value: Any, depth: int, seen: set[int], warn: Callable[[Any], None]) -> Any:
    """Walk a value and make every part of it strict JSON."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        # Lone surrogates cannot be encoded as UTF-8.
        return value.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(value) else value
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        if value.bit_length() > _MAX_INT_BITS:
            # Too long for Python to print (and no JSON reader keeps such precision anyway).
            warn(value)
            try:
                return float(value)
            except OverflowError:
                return None
        return int(value)
    if isinstance(value, float) and not isinstance(value, enum.Enum):
        return float(value) if math.isfinite(value) else None
    if depth >= _MAX_DEPTH:
        warn(value)
        # Not str(value): printing a deeply nested value recurses as deep as it goes.
        return f"<{type(value).__name__} nested deeper than {_MAX_DEPTH} levels>"
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in seen:
            warn(value)
            return "<circular reference>"
        seen.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {_key(k): _sanitize(v, depth + 1, seen, warn) for k, v in value.items()}
            return [_sanitize(v, depth + 1, seen, warn) for v in value]
        except Exception:  # a mapping of the app's own that raises when read: the rest goes
            warn(value)
            return _printable(value)
        finally:
            seen.discard(id(value))
    try:
        converted = _convert(value)
    except Exception:
        warn(value)
        return _printable(value)
    return _sanitize(converted, depth + 1, seen, warn)


def _printable(value: Any) -> str:
    """``str(value)`` as valid UTF-8, or a placeholder when that raises."""
    try:
        text = str(value)
        return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(text) else text
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(key) else key
    if isinstance(key, enum.Enum):
        key = key.value
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    return str(key)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _stdlib_dumps(event: Mapping[str, Any]) -> bytes:
    return json.dumps(
        event, default=_convert, allow_nan=False, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


if _orjson is not None:
    _ORJSON_OPTS = _orjson.OPT_NON_STR_KEYS

    def _fast_dumps(event: Mapping[str, Any]) -> bytes:
        # orjson writes NaN/Infinity as null, which is what we want. Its mode for keys that are
        # not strings takes twice the time (490 against 250 ns per event in a 100-event body),
        # so it is only the second try.
        encoded: bytes
        try:
            encoded = _orjson.dumps(event, default=_convert)
        except TypeError:  # a key that is not a string (or a value nothing converts)
            encoded = _orjson.dumps(event, default=_convert, option=_ORJSON_OPTS)
        return encoded

    ENCODER_NAME = "orjson"
else:  # pragma: no cover - exercised when orjson is absent
    _fast_dumps = _stdlib_dumps
    ENCODER_NAME = "json"


def encode_body(events: list[dict[str, Any]], *, use_orjson: bool = True) -> bytes | None:
    """The whole request body for ``events`` in one encoder call (the same bytes as their
    :func:`encode_event` forms joined by ``build_body``), or None when some event needs
    :func:`encode_event`'s care (then nothing is logged: the caller encodes them one by one)."""
    wrapped = {"source": "server", "events": events}
    try:
        return _fast_dumps(wrapped) if use_orjson else _stdlib_dumps(wrapped)
    except Exception:
        return None


def encode_event(event: Mapping[str, Any], *, use_orjson: bool = True) -> bytes:
    """Strict JSON bytes for one event; never raises for odd property values."""
    dumps = _fast_dumps if use_orjson else _stdlib_dumps
    try:
        return dumps(event)
    except Exception:
        pass
    unconvertible: list[str] = []

    def warn(value: Any) -> None:
        unconvertible.append(type(value).__name__)

    cleaned = _sanitize(event, 0, set(), warn)
    if unconvertible:
        logger.warning(
            "outlit: event %r had values that are not JSON-serializable (%s); sent as "
            "stand-ins: their str(), a float or null for an int too long, a placeholder",
            event.get("eventName") or event.get("type"),
            ", ".join(sorted(set(unconvertible))),
        )
    return json.dumps(cleaned, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )
