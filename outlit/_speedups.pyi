from collections.abc import Callable
from typing import Any

def queue_track(
    client: Any,
    queue: Any,
    room: int,
    wake_at: int,
    event_name: Any,
    email: Any,
    user_id: Any,
    fingerprint: Any,
    customer_id: Any,
    customer_domain: Any,
    properties: Any,
    timestamp: Any,
    /,
) -> bool: ...
def take_batch(
    queue: Any,
    max_events: int,
    max_bytes: int,
    overhead: int,
    marker_type: type,
    random: bytes,
    /,
) -> list[Any]: ...
def in_main_interpreter() -> bool: ...
def custom_event(item: Any, uuid: str, /) -> dict[str, Any]: ...
def identity_args(found: Any, /) -> tuple[Any, ...]: ...
def use_custom_event(function: Callable[..., Any], template: dict[str, Any], /) -> None: ...
def use_identity_args(function: Callable[..., Any], /) -> None: ...
def use_client_globals(globals: dict[str, Any], /) -> None: ...

source_digest: str
