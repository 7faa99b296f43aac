"""The worker's Faust app as the settings build it, without a broker."""

import pytest

from stream.app import create_app
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
