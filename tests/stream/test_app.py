"""The worker's Faust app as the settings build it, without a broker."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from stream.app import Worker, account_states, create_app
from stream.faust_internals import BatchApp, BatchTransport, intake_of
from stream.scorer import StrKeyedBytesStore
from stream.settings import Settings, SettingsError


def test_faust_pages_are_off_unless_the_settings_ask_for_them() -> None:
    quiet = create_app(Settings(metrics_port=0)).conf
    assert not (quiet.web_router_enabled or quiet.web_tables_enabled)
    assert not (quiet.web_stats_enabled or quiet.web_graph_enabled)
    asked = create_app(Settings(metrics_port=0, web_builtin_views=True)).conf
    assert asked.web_router_enabled and asked.web_tables_enabled
    assert not (asked.web_stats_enabled or asked.web_graph_enabled)


def test_wrong_keys_is_forward_or_dead_letter() -> None:
    assert Settings().wrong_keys == "forward"
    assert Settings().with_overrides({"wrong_keys": "dead_letter"}).wrong_keys == "dead_letter"
    with pytest.raises(SettingsError, match="wrong_keys: 'drop'"):
        Settings().with_overrides({"wrong_keys": "drop"})


def test_the_consumer_is_handed_the_workers_handlers_and_topics() -> None:
    settings = Settings(metrics_port=0, input_topic="in-x", fetch_max_wait_ms=35)
    worker = Worker(settings)
    intake = intake_of(worker.app)
    assert intake.input_topic == "in-x"
    assert intake.handle_batch == worker.handle_batch
    assert intake.map_sources == worker.map_sources
    assert intake.source_topics == frozenset()
    assert intake.fetch_max_wait_ms == 35
    assert isinstance(worker.app.transport, BatchTransport)


def test_a_consumer_started_without_handlers_says_so() -> None:
    with pytest.raises(RuntimeError, match="before its handlers were given"):
        intake_of(BatchApp("no-handlers", broker="kafka://127.0.0.1:9"))


def test_every_faust_private_reach_is_in_faust_internals() -> None:
    """Names Faust keeps private (a leading underscore) are read only in faust_internals;
    the rest of the worker goes through its accessors."""
    private = re.compile(
        r"\._(key_partition|recovery|ensure_producer|get|db_for_partition|visible_keys|"
        r"key_index|dbs|runner|new_transport|new_web|drain_messages|new_offset|acked|gap|"
        r"committed_offset|read_offset|slurp_changelogs)\b"
    )
    stream = Path(__file__).resolve().parents[2] / "stream"
    reaching = sorted(
        path.name
        for path in stream.glob("*.py")
        if path.name != "faust_internals.py" and private.search(path.read_text())
    )
    assert reaching == []


def test_the_memory_store_bounds_its_live_accounts_as_the_settings_say() -> None:
    table = SimpleNamespace(data=SimpleNamespace(data={}, _key_partition={}))
    bounded = account_states(table, Settings(max_live_accounts=5))
    assert isinstance(bounded, StrKeyedBytesStore) and bounded.max_live == 5
    unbounded = account_states(table, Settings())
    assert isinstance(unbounded, StrKeyedBytesStore) and unbounded.max_live is None
    with pytest.raises(SettingsError, match="max_live_accounts: must be 0"):
        Settings().with_overrides({"max_live_accounts": -1})
