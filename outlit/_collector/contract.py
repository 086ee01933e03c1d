"""The Outlit ingest wire contract as pure functions: what a request body must look like.

Nothing here does I/O, so the local collector and any test recorder can share one
reading of ``spec/ingest-api.md``. Each rule names the field it is about, so a
rejected event says exactly what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when the speedups extra is absent
    _orjson = None

__all__ = [
    "BILLING_STATUSES",
    "BROWSER_EVENT_TYPES",
    "EVENT_TYPES",
    "INVALID_KEY_MESSAGE",
    "MAX_BODY_BYTES",
    "MAX_EVENTS_PER_REQUEST",
    "SDK_EVENT_TYPES",
    "SOURCES",
    "STAGES",
    "STAGE_MARKERS",
    "Issue",
    "ValidationResult",
    "check_key",
    "error_envelope",
    "invalid_key_body",
    "validate_event",
    "validate_request",
]

MAX_EVENTS_PER_REQUEST = 100
# The service documents "1 MB"; the spec fixes it at 1,000,000 bytes of encoded body.
MAX_BODY_BYTES = 1_000_000

SOURCES = ("server", "client", "integration")
SDK_EVENT_TYPES = ("custom", "identify", "stage", "billing")
# Browser-only types the OpenAPI lists; accepted so a shared workspace's traffic still parses.
BROWSER_EVENT_TYPES = ("pageview", "form", "engagement", "calendar")
EVENT_TYPES = SDK_EVENT_TYPES + BROWSER_EVENT_TYPES
STAGES = ("activated", "engaged", "inactive")
BILLING_STATUSES = ("trialing", "paid", "churned")
STAGE_MARKERS = ("__fingerprint", "__email", "__userId")
CALENDAR_PROVIDERS = ("cal.com", "calendly", "unknown")

INVALID_KEY_MESSAGE = "Invalid or inactive tracking configuration"

_TOP_LEVEL_KEYS = frozenset({"source", "events", "visitorId", "userIdentity", "customerIdentity"})
# The request-level identity objects (browser batches), each key with the JSON kind it takes.
_USER_IDENTITY_KEYS: dict[str, type] = {"email": str, "userId": str, "traits": dict}
_CUSTOMER_IDENTITY_KEYS: dict[str, type] = {"customerId": str, "customerTraits": dict}
_UTM_KEYS = frozenset({"source", "medium", "campaign", "term", "content"})

_CUSTOM_IDENTITY = ("email", "userId", "fingerprint", "customerId", "customerDomain")
_IDENTIFY_IDENTITY = ("email", "userId")
_BILLING_IDENTITY = ("customerId", "customerDomain", "domain", "stripeCustomerId")
_OBJECT_FIELDS = ("properties", "traits", "customerTraits", "formFields")
# Fields that, when present, must be strings whatever the event type.
_STRING_FIELDS = (
    "uuid",
    "eventName",
    "email",
    "userId",
    "fingerprint",
    "customerId",
    "customerDomain",
    "domain",
    "stripeCustomerId",
    "referrer",
    "title",
    "formId",
)

_FIELD_KINDS: dict[str, type] = {
    "url": str,
    "path": str,
    **dict.fromkeys(_STRING_FIELDS, str),
    **dict.fromkeys(_OBJECT_FIELDS, dict),
    "utm": dict,
}
_REQUIRED_FIELDS = {
    "type": "required",
    "timestamp": "required (Unix milliseconds)",
    "url": "required",
    "path": "required",
}

_PUBLIC_KEY = re.compile(r"pk_[A-Za-z0-9_\-]+")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Non-empty strings only: "" is in every string, and text[i:i+1] is "" at the end.
_JSON_WHITESPACE = frozenset(" \t\n\r")


@dataclass(frozen=True)
class Issue:
    """One reason a request or event was refused.

    ``index`` is the event's position in ``events``, or -1 for the request as a whole.
    ``path`` locates the offending value (``("events", 3, "eventName")``).
    """

    index: int
    message: str
    path: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class ValidationResult:
    """What the service would answer for one request body.

    ``accepted`` holds ``(index, event)`` for every event that passed, and ``raw``
    the exact JSON text each of those events had in the body, in the same order.
    """

    status: int
    body: dict[str, Any]
    accepted: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)


def check_key(public_key: str) -> bool:
    """Whether ``public_key`` has the shape of an Outlit public key (``pk_...``)."""
    return _PUBLIC_KEY.fullmatch(public_key) is not None


def error_envelope(message: str, issues: list[Issue] | None = None) -> dict[str, Any]:
    """The service's error body; ``errors`` items follow the OpenAPI ``ValidationIssue``."""
    return {
        "success": False,
        "message": message,
        "errors": [{"path": list(issue.path), "message": issue.message} for issue in issues or []],
    }


def invalid_key_body() -> dict[str, Any]:
    """The 401/403 body the service sends for an unknown or inactive key."""
    return {
        "success": False,
        "message": INVALID_KEY_MESSAGE,
        "errors": [{"index": -1, "message": INVALID_KEY_MESSAGE}],
    }


def validate_event(event: object) -> list[str]:
    """Every reason ``event`` breaks the wire contract, each as ``"field: problem"``.

    An empty list means the service would store it. Callers add their own
    ``events[i].`` prefix.
    """
    return [f"{name}: {problem}" if name else problem for name, problem in _event_problems(event)]


def validate_request(body: bytes) -> ValidationResult:
    """Judge one request body the way the ingest endpoint does.

    200 when every event is good, 207 when some are refused (the good ones are
    stored), 400 for a body that is not a valid request, 413 past the size limits.
    A body spelled as the SDK sends it is read with orjson when that is installed,
    any other with the standard library; both readings give the same result.
    """
    if len(body) > MAX_BODY_BYTES:
        return _refuse(413, f"Request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    parsed = _parse_compact(body) if _orjson is not None else None
    if parsed is not None:
        top, raw_events = parsed
    else:
        try:
            top, raw_events = _parse_body(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return _refuse(400, f"Malformed JSON: body is not UTF-8 ({exc.reason})")
        except ValueError as exc:
            return _refuse(400, f"Malformed JSON: {exc}")
        except RecursionError:
            return _refuse(400, "Malformed JSON: nested too deeply")

    if not isinstance(top, dict):
        return _refuse(400, f"Request body must be a JSON object, got {_json_type(top)}")
    shape_issues = _request_shape_issues(top)
    if shape_issues:
        return _refuse(400, "Invalid request body", shape_issues)

    events = top["events"]
    assert isinstance(events, list) and raw_events is not None  # guaranteed by the shape check
    if len(events) > MAX_EVENTS_PER_REQUEST:
        return _refuse(
            413, f"At most {MAX_EVENTS_PER_REQUEST} events per request, got {len(events)}"
        )

    found = list(map(_event_problems, events))
    if not any(found):  # the usual case: every event is good
        accepted = list(enumerate(events))
        return ValidationResult(
            200, {"success": True, "processed": len(accepted)}, accepted, [], raw_events
        )

    accepted = []
    raw: list[str] = []
    errors: list[Issue] = []
    for index, (event, problems) in enumerate(zip(events, found, strict=True)):
        if not problems:
            accepted.append((index, event))
            raw.append(raw_events[index])
            continue
        # One entry per event, so a client can count refused indexes without deduplicating.
        message = "; ".join(
            f"events[{index}].{name}: {problem}" if name else f"events[{index}]: {problem}"
            for name, problem in problems
        )
        errors.append(Issue(index, message, ("events", index)))

    body_json: dict[str, Any] = {
        "success": False,
        "processed": len(accepted),
        "errors": [{"index": issue.index, "message": issue.message} for issue in errors],
    }
    return ValidationResult(207, body_json, accepted, errors, raw)


# -- request level ------------------------------------------------------------------


def _refuse(status: int, message: str, issues: list[Issue] | None = None) -> ValidationResult:
    issues = issues or [Issue(-1, message)]
    return ValidationResult(status, error_envelope(message, issues), errors=issues)


def _request_shape_issues(top: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    for key in top:
        if key not in _TOP_LEVEL_KEYS:
            issues.append(Issue(-1, f"{key}: unexpected key in request body", (key,)))

    source = top.get("source")
    if "source" not in top:
        issues.append(
            Issue(-1, "source: required (one of server, client, integration)", ("source",))
        )
    elif source not in SOURCES:
        issues.append(
            Issue(
                -1,
                f"source: must be one of server, client, integration, got {source!r}",
                ("source",),
            )
        )

    events = top.get("events")
    if "events" not in top:
        issues.append(Issue(-1, "events: required", ("events",)))
    elif not isinstance(events, list):
        issues.append(Issue(-1, f"events: must be an array, got {_json_type(events)}", ("events",)))
    elif not events:
        issues.append(Issue(-1, "events: must hold at least one event", ("events",)))

    if "visitorId" in top and not isinstance(top["visitorId"], str):
        issues.append(Issue(-1, "visitorId: must be a string", ("visitorId",)))
    for key, allowed in (
        ("userIdentity", _USER_IDENTITY_KEYS),
        ("customerIdentity", _CUSTOMER_IDENTITY_KEYS),
    ):
        if key not in top:
            continue
        value = top[key]
        if not isinstance(value, dict):
            issues.append(Issue(-1, f"{key}: must be an object", (key,)))
            continue
        for inner, inner_value in value.items():
            kind = allowed.get(inner)
            if kind is None:
                issues.append(Issue(-1, f"{key}.{inner}: unexpected key", (key, inner)))
            elif not isinstance(inner_value, kind):
                expected = "a string" if kind is str else "a JSON object"
                issues.append(
                    Issue(
                        -1,
                        f"{key}.{inner}: must be {expected}, got {_json_type(inner_value)}",
                        (key, inner),
                    )
                )
    return issues


# -- event level --------------------------------------------------------------------


def _event_problems(event: object) -> list[tuple[str, str]]:
    """``(field, problem)`` pairs; the field is ``""`` when the event as a whole is wrong."""
    if not isinstance(event, dict):
        return [("", f"must be a JSON object, got {_json_type(event)}")]
    problems: list[tuple[str, str]] = []

    # One pass over the keys: the collector runs this for every event it receives.
    for key, value in event.items():
        if value is None:
            # The SDK leaves unset keys out; an explicit null means a builder forgot to.
            problems.append((key, "null is not allowed; leave the key out instead"))
            continue
        kind = _FIELD_KINDS.get(key)
        if kind is not None and not isinstance(value, kind):
            expected = "a string" if kind is str else "a JSON object"
            problems.append((key, f"must be {expected}, got {_json_type(value)}"))
    for key in _REQUIRED_FIELDS:
        if key not in event:
            problems.append((key, _REQUIRED_FIELDS[key]))

    event_type = event.get("type")
    if event_type is not None and event_type not in EVENT_TYPES:
        problems.append(("type", f"must be one of {', '.join(EVENT_TYPES)}, got {event_type!r}"))
    timestamp = event.get("timestamp")
    if timestamp is not None and (type(timestamp) is not int or timestamp < 0):
        problems.append(
            ("timestamp", f"must be a non-negative integer of milliseconds, got {timestamp!r}")
        )
    uuid = event.get("uuid")
    if isinstance(uuid, str) and not uuid.strip():
        problems.append(("uuid", "must not be blank"))
    utm = event.get("utm")
    if isinstance(utm, dict):
        for key, value in utm.items():
            if key not in _UTM_KEYS:
                problems.append(
                    (f"utm.{key}", f"unexpected key (one of {', '.join(sorted(_UTM_KEYS))})")
                )
            elif not isinstance(value, str):
                problems.append((f"utm.{key}", f"must be a string, got {_json_type(value)}"))

    if event_type == "custom":
        name = event.get("eventName")
        if not (isinstance(name, str) and name.strip()):
            problems.append(("eventName", "required for type 'custom' (non-blank string)"))
        _require_one_of(event, _CUSTOM_IDENTITY, "custom", problems)
    elif event_type == "identify":
        _require_one_of(event, _IDENTIFY_IDENTITY, "identify", problems)
    elif event_type == "stage":
        _stage_problems(event, problems)
    elif event_type == "billing":
        status = event.get("status")
        if status not in BILLING_STATUSES:
            problems.append(
                ("status", f"must be one of {', '.join(BILLING_STATUSES)}, got {status!r}")
            )
        _require_one_of(event, _BILLING_IDENTITY, "billing", problems)
    elif event_type == "engagement":
        for key in ("activeTimeMs", "totalTimeMs"):
            value = event.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                problems.append((key, "required for type 'engagement' (number >= 0)"))
        if not isinstance(event.get("sessionId"), str):
            problems.append(("sessionId", "required for type 'engagement' (string)"))
    elif event_type == "calendar":
        provider = event.get("provider")
        if provider not in CALENDAR_PROVIDERS:
            problems.append(
                ("provider", f"must be one of {', '.join(CALENDAR_PROVIDERS)}, got {provider!r}")
            )
    return problems


def _stage_problems(event: Mapping[str, Any], problems: list[tuple[str, str]]) -> None:
    stage = event.get("stage")
    if stage not in STAGES:
        problems.append(("stage", f"must be one of {', '.join(STAGES)}, got {stage!r}"))
    properties = event.get("properties")
    if not isinstance(properties, dict):
        if "properties" not in event:
            problems.append(
                ("properties", "required for type 'stage' (it carries the identity markers)")
            )
        return  # a non-object was already reported with the other object fields
    present = False
    for marker in STAGE_MARKERS:
        if marker not in properties:
            problems.append(
                (f"properties.{marker}", "required for type 'stage' (null when unknown)")
            )
            continue
        value = properties[marker]
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(
                (f"properties.{marker}", f"must be a string or null, got {_json_type(value)}")
            )
        elif value.strip():
            present = True
    if not present:
        problems.append(
            ("properties", "needs a non-blank __fingerprint, __email or __userId for type 'stage'")
        )


def _require_one_of(
    event: Mapping[str, Any],
    keys: tuple[str, ...],
    event_type: str,
    problems: list[tuple[str, str]],
) -> None:
    for key in keys:
        value = event.get(key)
        if isinstance(value, str) and value.strip():
            return
    problems.append(("", f"type '{event_type}' needs a non-blank one of {', '.join(keys)}"))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# -- parsing ------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (the service requires strict JSON)")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# The decoder's C scanner: calling it directly skips raw_decode's Python frame per event.
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _parse_compact(body: bytes) -> tuple[dict[str, Any], list[str] | None] | None:
    """Parse ``body`` with orjson when it is spelled exactly as orjson writes it, else None.

    The SDK sends that spelling. Then each event's original text is what orjson writes
    for the parsed event, so nothing has to be scanned by hand. The body is rebuilt
    from those texts and compared byte for byte: any other spelling (spaces, escapes,
    number forms, repeated keys, integers orjson reads as floats, nesting too deep for
    orjson) returns None, and :func:`_parse_body` judges the body as before.
    """
    try:
        top = _orjson.loads(body)
    except _orjson.JSONDecodeError:
        return None
    if type(top) is not dict:
        return None
    dumps = _orjson.dumps
    events = top.get("events")
    try:
        texts: list[bytes] | None = list(map(dumps, events)) if type(events) is list else None
        fields = [
            dumps(key) + b":[" + b",".join(texts) + b"]"
            if key == "events" and texts is not None
            else dumps(key) + b":" + dumps(value)
            for key, value in top.items()
        ]
    except _orjson.JSONEncodeError:  # deeper than orjson writes
        return None
    if b"{" + b",".join(fields) + b"}" != body:
        return None
    return top, None if texts is None else list(map(bytes.decode, texts))


def _parse_body(text: str) -> tuple[Any, list[str] | None]:
    """Parse a request body, also returning each element of ``events`` as its original text.

    Keeping the original text lets the collector show and return every event exactly
    as it crossed the wire, without a second encoding pass. Only the top-level object
    and the ``events`` array are walked by hand; every value inside them goes through
    the C scanner, so this costs about what ``json.loads`` does.
    """
    end = len(text)
    pos = _skip(text, 0)
    if pos >= end or text[pos] != "{":
        value, pos = _DECODER.raw_decode(text, pos)
        _expect_end(text, pos)
        return value, None

    top: dict[str, Any] = {}
    raw_events: list[str] | None = None
    pos = _skip(text, pos + 1)
    if _peek(text, pos) == "}":
        _expect_end(text, pos + 1)
        return top, None
    while True:
        if _peek(text, pos) != '"':
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, pos
            )
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if _peek(text, pos) != ":":
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = _skip(text, pos + 1)
        if key == "events" and _peek(text, pos) == "[":
            value, raw_events, pos = _parse_array_keeping_text(text, pos)
        else:
            value, pos = _DECODER.raw_decode(text, pos)
            if key == "events":
                raw_events = None
        top[key] = value
        pos = _skip(text, pos)
        separator = _peek(text, pos)
        if separator == "}":
            _expect_end(text, pos + 1)
            return top, raw_events
        if separator != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _skip(text, pos + 1)


def _parse_array_keeping_text(text: str, pos: int) -> tuple[list[Any], list[str], int]:
    values: list[Any] = []
    raw: list[str] = []
    scan = _SCAN
    pos = _skip(text, pos + 1)
    if _peek(text, pos) == "]":
        return values, raw, pos + 1
    while True:
        try:
            value, end = scan(text, pos)
        except StopIteration as exc:
            raise json.JSONDecodeError("Expecting value", text, exc.value) from None
        values.append(value)
        raw.append(text[pos:end])
        separator = text[end : end + 1]
        if separator in _JSON_WHITESPACE:  # compact JSON skips the regex entirely
            end = _skip(text, end)
            separator = text[end : end + 1]
        if separator == "]":
            return values, raw, end + 1
        if separator != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, end)
        pos = end + 1
        if text[pos : pos + 1] in _JSON_WHITESPACE:
            pos = _skip(text, pos)


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _peek(text: str, pos: int) -> str:
    return text[pos] if pos < len(text) else ""


def _expect_end(text: str, pos: int) -> None:
    pos = _skip(text, pos)
    if pos != len(text):
        raise json.JSONDecodeError("Extra data", text, pos)
