from collections.abc import Callable
from typing import Any

from typing_extensions import disjoint_base

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
def lookup_tracker(client: Any, lookup: Callable[[Any], Any], subject: Any, /) -> Tracker: ...
def use_tracker(
    outlit_class: type,
    outlit_track: Callable[..., Any],
    bound_tracker: type[Tracker],
    python_track: Callable[..., Any],
    no_ids: tuple[Any, ...],
    failed_ids: tuple[Any, ...],
    not_here: Any,
    error: type[BaseException],
    message: str,
    identity_raised: Callable[..., Any],
    /,
) -> None: ...
def in_main_interpreter() -> bool: ...
def custom_event(item: Any, uuid: str, /) -> dict[str, Any]: ...
def identity_args(found: Any, /) -> tuple[Any, ...]: ...
def use_custom_event(function: Callable[..., Any], template: dict[str, Any], /) -> None: ...
def use_identity_args(function: Callable[..., Any], /) -> None: ...
def use_client_globals(globals: dict[str, Any], /) -> None: ...

source_digest: str

@disjoint_base
class Tracker:
    _client: Any
    _ids: Any
    _source: Any
    def track(
        self,
        *,
        event_name: Any,
        email: Any = None,
        user_id: Any = None,
        fingerprint: Any = None,
        customer_id: Any = None,
        customer_domain: Any = None,
        properties: Any = None,
        timestamp: Any = None,
    ) -> None: ...
