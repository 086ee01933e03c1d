"""The collector's SQLite store: rows as received, retries stored once, queries newest first."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import billing, custom, identify, stage

from outlit._collector.store import EventStore, EventWriter, index_columns


def _pairs(*events: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    return [(event, json.dumps(event)) for event in events]


@pytest.fixture
def store() -> Any:
    with EventStore(memory=True) as opened:
        yield opened


def test_each_event_is_one_row_with_its_searchable_columns(store: EventStore) -> None:
    result = store.add(
        "pk_a",
        _pairs(custom(uuid="u1"), identify(), stage(), billing(customerId=None)),
        received_at=123,
    )
    assert result == (4, 0)
    rows = store.events()
    assert [(row.type, row.name) for row in rows] == [
        ("billing", "paid"),
        ("stage", "activated"),
        ("identify", None),
        ("custom", "subscription_upgraded"),
    ]
    billing_row, stage_row, identify_row, custom_row = rows
    assert (custom_row.uuid, custom_row.public_key, custom_row.received_at) == ("u1", "pk_a", 123)
    assert (custom_row.email, custom_row.customer_id, custom_row.customer_domain) == (
        "user@example.com",
        "cust_123",
        "acme.com",
    )
    assert (identify_row.email, identify_row.user_id) == ("user@example.com", "usr_1")
    # Stage identity travels in the __ markers; it is still searchable by email.
    assert stage_row.email == "user@example.com"
    assert (billing_row.customer_id, billing_row.customer_domain) == (None, "acme.com")


def test_event_text_is_kept_exactly_as_received(store: EventStore) -> None:
    raw = '{"type": "custom",  "timestamp": 1, "url": "u", "path": "/", "eventName": "caf\\u00e9"}'
    store.add("pk_a", [(json.loads(raw), raw)])
    (row,) = store.events()
    assert row.event_json == raw
    assert row.event["eventName"] == "café"


def test_retried_uuid_is_stored_once_per_key(store: EventStore) -> None:
    assert store.add("pk_a", _pairs(custom(uuid="u1"), custom(uuid="u2"))) == (2, 0)
    assert store.add("pk_a", _pairs(custom(uuid="u1"), custom(uuid="u3"))) == (1, 1)
    # The same uuid twice in one batch, and under another key.
    assert store.add("pk_a", _pairs(custom(uuid="u4"), custom(uuid="u4"))) == (1, 1)
    assert store.add("pk_b", _pairs(custom(uuid="u1"))) == (1, 0)
    assert store.count() == 5
    assert store.count(public_key="pk_a") == 4


def test_events_without_uuid_are_never_merged(store: EventStore) -> None:
    assert store.add("pk_a", _pairs(custom(), custom())) == (2, 0)
    assert store.count() == 2


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": "custom"}, ["c2", "c1"]),
        ({"name": "signed_up"}, ["c2"]),
        ({"name": "paid"}, ["b1"]),
        ({"email": "ada@example.com"}, ["s1", "c2"]),
        ({"customer_id": "cust_9"}, ["c1"]),
        ({"customer_id": "globex.com"}, ["b1"]),  # matches the customer domain too
        ({"user_id": "usr_7"}, ["i1"]),
        ({"type": "custom", "email": "ada@example.com"}, ["c2"]),
        ({"type": "billing", "name": "churned"}, []),
    ],
)
def test_queries_filter_and_return_newest_first(
    store: EventStore, filters: dict[str, Any], expected: list[str]
) -> None:
    store.add(
        "pk_a",
        _pairs(
            custom(uuid="c1", customerId="cust_9", email="bob@example.com"),
            identify(uuid="i1", email=None, userId="usr_7"),
            custom(uuid="c2", eventName="signed_up", email="ada@example.com"),
            billing(uuid="b1", customerId=None, customerDomain="globex.com", domain="globex.com"),
            stage(
                uuid="s1",
                properties={"__fingerprint": None, "__email": "ada@example.com", "__userId": None},
            ),
        ),
    )
    assert [row.uuid for row in store.events(**filters)] == expected


def test_limit_and_after_id_page_through_new_events(store: EventStore) -> None:
    store.add("pk_a", _pairs(*[custom(uuid=f"u{i}") for i in range(10)]))
    newest = store.events(limit=3)
    assert [row.uuid for row in newest] == ["u9", "u8", "u7"]
    assert [row.id for row in newest] == sorted((row.id for row in newest), reverse=True)
    marker = store.last_id()
    assert store.events(after_id=marker) == []
    store.add("pk_a", _pairs(custom(uuid="late")))
    assert [row.uuid for row in store.events(after_id=marker)] == ["late"]


def test_file_store_uses_wal_and_keeps_events_and_retries_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "events.sqlite3"
    with EventStore(path) as first:
        first.add("pk_a", _pairs(custom(uuid="u1")))
    with EventStore(path) as second:
        assert second.count() == 1
        # The retry arrives after a restart: still recognised.
        assert second.add("pk_a", _pairs(custom(uuid="u1"), custom(uuid="u2"))) == (1, 1)
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    finally:
        connection.close()


def test_default_path_is_dot_outlit_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with EventStore() as opened:
        assert opened.path == tmp_path / ".outlit" / "collector.sqlite3"
    assert (tmp_path / ".outlit" / "collector.sqlite3").is_file()


def test_clear_forgets_events_and_their_uuids(store: EventStore) -> None:
    store.add("pk_a", _pairs(custom(uuid="u1")))
    store.clear()
    assert store.count() == 0
    assert store.add("pk_a", _pairs(custom(uuid="u1"))) == (1, 0)


def test_closed_store_refuses_use_and_close_is_idempotent() -> None:
    opened = EventStore(memory=True)
    opened.close()
    opened.close()
    assert opened.closed
    with pytest.raises(RuntimeError, match="closed"):
        opened.events()


def test_failed_commit_releases_uuids_for_a_retry(store: EventStore) -> None:
    prepared = store.prepare("pk_a", _pairs(custom(uuid="u1")))
    store._connection().execute("DROP TABLE events")  # make the insert fail
    with pytest.raises(sqlite3.OperationalError):
        store.commit([prepared])
    assert store.prepare("pk_a", _pairs(custom(uuid="u1"))).stored == 1


def test_writer_commits_in_the_background_and_flush_waits_for_it(store: EventStore) -> None:
    committed: list[int] = []
    writer = EventWriter(store, on_commit=lambda result: committed.append(result.stored))
    try:
        for i in range(20):
            writer.submit(store.prepare("pk_a", _pairs(custom(uuid=f"u{i}"))))
        assert writer.flush(timeout=5)
        assert store.count() == 20
        assert sum(committed) == 20
    finally:
        writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(store.prepare("pk_a", []))


def test_writer_close_commits_everything_submitted(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    with EventStore(path) as opened:
        writer = EventWriter(opened, max_pending=2)
        submitters = [
            threading.Thread(
                target=lambda n=n: writer.submit(
                    opened.prepare("pk_a", _pairs(custom(uuid=f"t{n}")))
                )
            )
            for n in range(8)
        ]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join()
        writer.close()
    with EventStore(path) as reopened:
        assert reopened.count() == 8


def test_missing_columns_are_null_while_empty_and_zero_strings_are_kept(store: EventStore) -> None:
    store.add(
        "pk_a",
        _pairs(
            custom(uuid="c", email="", customerId="0", customerDomain=None, domain="d"),
            stage(uuid="s", properties={"__fingerprint": "fp", "__email": None, "__userId": ""}),
            identify(uuid="i", email=None),
        ),
    )
    rows = store._connection().execute(
        "SELECT uuid, name, email, typeof(email), user_id, typeof(user_id), customer_id,"
        " customer_domain, typeof(customer_domain) FROM events ORDER BY id"
    )
    assert rows.fetchall() == [
        ("c", "subscription_upgraded", "", "text", None, "null", "0", "d", "text"),
        ("s", "activated", None, "null", "", "text", None, None, "null"),
        ("i", None, None, "null", "usr_1", "text", None, None, "null"),
    ]


def test_index_columns_give_none_for_what_is_missing() -> None:
    assert index_columns(identify(uuid=None, email=None, customerTraits=None)) == (
        None,
        "identify",
        None,
        None,
        "usr_1",
        None,
        None,
    )
    assert index_columns(billing(uuid="b", customerDomain="")) == (
        "b",
        "billing",
        "paid",
        None,
        None,
        "cust_123",
        "acme.com",
    )


def test_failed_commit_of_several_keys_releases_every_claimed_uuid(store: EventStore) -> None:
    batches = [
        store.prepare("pk_a", _pairs(custom(uuid="u1"), custom(uuid="u2"))),
        store.prepare("pk_b", _pairs(custom(uuid="u1"))),
    ]
    store._connection().execute("DROP TABLE events")
    with pytest.raises(sqlite3.OperationalError):
        store.commit(batches)
    assert store.prepare("pk_a", _pairs(custom(uuid="u1"), custom(uuid="u2"))).stored == 2
    assert store.prepare("pk_b", _pairs(custom(uuid="u1"))).stored == 1


def test_batches_over_one_statement_are_stored_whole_or_not_at_all(store: EventStore) -> None:
    big = store.prepare("pk_a", _pairs(*[custom(uuid=f"a{i}") for i in range(250)]))
    small = [
        store.prepare("pk_b", _pairs(*[custom(uuid=f"b{n}-{i}") for i in range(70)]))
        for n in range(3)
    ]
    assert store.commit([big, *small]) == (460, 0)
    assert store.count(public_key="pk_a") == 250 and store.count(public_key="pk_b") == 210

    store._connection().execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.uuid = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    events = [custom(uuid=f"c{i}") for i in range(249)] + [custom(uuid="boom")]
    with pytest.raises(sqlite3.IntegrityError):
        store.commit([store.prepare("pk_c", _pairs(*events))])  # fails in its third statement
    assert store.count(public_key="pk_c") == 0
    store._connection().execute("DROP TRIGGER refuse")
    assert store.add("pk_c", _pairs(*events)) == (250, 0)  # every uuid was released
