"""stream.settings: every setting from a file, the environment or the command line, checked."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from stream.app import app_options
from stream.settings import (
    CONFIG_VARIABLE,
    ENVIRONMENT,
    Settings,
    SettingsError,
    build_engine,
    env_name,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_but_the_inputs_tables_has_an_environment_variable() -> None:
    names = {f.name for f in fields(Settings)} - {"inputs"}
    assert set(ENVIRONMENT.values()) == names
    assert len(ENVIRONMENT) == len(names)  # one variable per setting
    assert env_name("tick_interval_s") == "HEALTHSTREAM_TICK_INTERVAL"
    assert env_name("kafka_ssl_cafile") == "KAFKA_SSL_CAFILE"
    assert env_name("bootstrap_servers") == "KAFKA_BOOTSTRAP_SERVERS"


def test_the_variables_once_ignored_now_set_their_settings() -> None:
    settings = load_settings(
        environ={
            "HEALTHSTREAM_TICK_INTERVAL": "60",
            "HEALTHSTREAM_MIN_STEP": "3",
            "HEALTHSTREAM_WEB_ENABLED": "true",
            "HEALTHSTREAM_FETCH_MAX_WAIT_MS": "50",
        }
    )
    assert settings.tick_interval_s == 60.0 and settings.min_step == 3
    assert settings.web_enabled is True and settings.fetch_max_wait_ms == 50


#: a valid value other than the default, for settings that allow only some
SAMPLES = {
    "store": "rocksdb://",
    "unknown_types": "skip",
    "wrong_keys": "dead_letter",
    "kafka_security_protocol": "SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-256",
}
#: settings that only make sense with another: set together
PAIRED = {
    "kafka_sasl_username": {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": "p"},
    "kafka_sasl_password": {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"},
    "kafka_sasl_oauth_token_provider": {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "OAUTHBEARER",
    },
    "kafka_ssl_cafile": {"kafka_security_protocol": "SSL"},
    "kafka_ssl_key_password": {"kafka_security_protocol": "SSL"},
    "kafka_ssl_certfile": {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "k.pem"},
    "kafka_ssl_keyfile": {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "c.pem"},
}


@pytest.mark.parametrize("name", sorted(ENVIRONMENT))
def test_each_variable_reaches_its_setting(name: str) -> None:
    setting = ENVIRONMENT[name]
    default = getattr(Settings(), setting)
    value, want = {bool: ("yes", True), int: ("7", 7), float: ("2.5", 2.5)}.get(
        type(default), (SAMPLES.get(setting, "some-value"),) * 2
    )
    environ = {name: value, **{env_name(k): v for k, v in PAIRED.get(setting, {}).items()}}
    got = getattr(load_settings(environ=environ), setting)
    assert got == want and got != default


def test_a_misspelt_variable_is_an_error_that_names_the_right_one() -> None:
    with pytest.raises(
        SettingsError,
        match="HEALTHSTREAM_TICK_INTERVALS: no such setting "
        r"\(did you mean HEALTHSTREAM_TICK_INTERVAL\?\)",
    ):
        load_settings(environ={"HEALTHSTREAM_TICK_INTERVALS": "60"})
    # variables of other tools, and the dashboard's token, are left alone
    load_settings(environ={"KAFKA_HEAP_OPTS": "-Xmx1g", "HEALTHSTREAM_UI_TOKEN": "t"})


@pytest.mark.parametrize("text", ["maybe", "2", "enabled"])
def test_a_flag_that_is_neither_true_nor_false_is_an_error(text: str) -> None:
    with pytest.raises(SettingsError, match="web_enabled"):
        load_settings(environ={"HEALTHSTREAM_WEB_ENABLED": text})
    assert load_settings(environ={"HEALTHSTREAM_WEB_ENABLED": "off"}).web_enabled is False


def test_the_config_file_comes_from_healthstream_config_unless_given(tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text('[healthstream]\ninput_topic = "from-env-file"\npartitions = 8\n')
    given = tmp_path / "given.toml"
    given.write_text('[healthstream]\ninput_topic = "from-given-file"\n')
    environ = {CONFIG_VARIABLE: str(env_file)}
    assert load_settings(environ=environ).input_topic == "from-env-file"
    assert load_settings(given, environ=environ).input_topic == "from-given-file"
    # the environment overrides the file, and the command line both
    both = {**environ, "HEALTHSTREAM_PARTITIONS": "12"}
    assert load_settings(environ=both).partitions == 12
    assert load_settings(cli={"partitions": 16}, environ=both).partitions == 16
    with pytest.raises(SettingsError, match="missing.toml"):
        load_settings(environ={CONFIG_VARIABLE: str(tmp_path / "missing.toml")})


def test_the_http_api_listens_on_this_machine_only_unless_told() -> None:
    local = app_options(Settings())
    assert local["web_bind"] == "127.0.0.1"
    assert local["canonical_url"] == "http://127.0.0.1:6066"
    everywhere = app_options(Settings(web_host="0.0.0.0"))
    assert everywhere["web_bind"] == "0.0.0.0"
    assert "0.0.0.0" not in everywhere["canonical_url"]  # others reach it by name


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "healthstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env},
    )


def test_a_worker_with_a_misspelt_variable_stops_with_one_line() -> None:
    done = _cli("worker", "--broker-wait", "1", env={"HEALTHSTREAM_MIN_STEPS": "3"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "healthstream: environment variable HEALTHSTREAM_MIN_STEPS: no such setting "
        "(did you mean HEALTHSTREAM_MIN_STEP?)"
    )


def test_worker_help_shows_the_metrics_port_and_web_host_with_their_defaults() -> None:
    done = _cli("worker", "--help", env={})
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--metrics-port METRICS_PORT" in text and "default 9464; 0: not served" in text
    assert "--web-host WEB_HOST" in text and "default 127.0.0.1" in text
    assert "HEALTHSTREAM_CONFIG" in text


def test_operations_md_lists_every_setting_with_its_variable_and_default() -> None:
    text = (ROOT / "docs/operations.md").read_text()
    defaults = Settings()
    for variable, setting in ENVIRONMENT.items():
        value = getattr(defaults, setting)
        shown = (
            {
                "": '`""`',
                None: "none",
                True: "`true`",
                False: "`false`",
            }.get(value, f"`{value}`")
            if not isinstance(value, int | float) or isinstance(value, bool)
            else f"`{value}`"
        )
        assert f"| `{setting}` | `{variable}` | {shown} |" in text, setting


def test_the_start_up_line_says_where_the_worker_reads_writes_and_listens() -> None:
    from stream.app import startup_line

    settings = Settings(
        bootstrap_servers="kafka-1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password="never-shown",
        web_enabled=True,
    ).with_overrides({})
    engine = build_engine(settings)
    line = startup_line(settings, ["healthstream-accounts-changelog"], engine)
    assert line == (
        "worker: broker kafka-1:9093 (SASL_SSL), group healthstream, reading telemetry, "
        "writing health-scores, dead letters telemetry-deadletter, changelog "
        f"healthstream-accounts-changelog, store memory://, profile default ({engine.version}), "
        "metrics http://0.0.0.0:9464/metrics, API http://127.0.0.1:6066/accounts/"
    )
    assert "never-shown" not in line
    quiet = startup_line(Settings(metrics_port=0), [], engine)
    assert quiet.endswith("metrics off, API off")
