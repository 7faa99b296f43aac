"""One frozen settings object: defaults < config file (TOML) < environment < CLI flags."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import load_profile
from telemetry.mapping import InputMapping, MappingError

#: the file of settings when no ``--config`` is given
CONFIG_VARIABLE = "HEALTHSTREAM_CONFIG"
#: variables of the HEALTHSTREAM_ prefix that are not settings of the worker
OTHER_VARIABLES = frozenset({CONFIG_VARIABLE, "HEALTHSTREAM_UI_TOKEN"})
#: settings whose variable is not named by the rule of ``env_name``
_NAMED = {"bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS", "profile_path": "HEALTHSTREAM_PROFILE"}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(text)


def env_name(setting: str) -> str:
    """The environment variable of a setting: ``KAFKA_`` and the rest for the Kafka
    client's (``kafka_ssl_cafile``: ``KAFKA_SSL_CAFILE``), else ``HEALTHSTREAM_`` and the
    name without a seconds suffix (``tick_interval_s``: ``HEALTHSTREAM_TICK_INTERVAL``)."""
    if setting in _NAMED:
        return _NAMED[setting]
    if setting.startswith("kafka_"):
        return "KAFKA_" + setting.removeprefix("kafka_").upper()
    return "HEALTHSTREAM_" + setting.removesuffix("_s").upper()


class SettingsError(ValueError):
    """A setting with a bad name or value; the message names it."""


@dataclass(frozen=True)
class TopicInput:
    """A source topic the worker reads besides the input topic, and how its records map
    to the event contract (see ``telemetry.mapping`` and ``docs/inputs.md``)."""

    topic: str
    mapping: InputMapping


def parse_inputs(tables: Any) -> tuple[TopicInput, ...]:
    """``[[inputs]]`` tables, each validated; errors name the topic and the key."""
    if not isinstance(tables, list | tuple):
        raise SettingsError("inputs: expected a list of tables ([[inputs]] in TOML)")
    found: list[TopicInput] = []
    for n, table in enumerate(tables):
        if isinstance(table, TopicInput):
            found.append(table)
            continue
        if not isinstance(table, Mapping):
            raise SettingsError(f"inputs[{n}]: expected a table")
        topic = table.get("topic")
        if not isinstance(topic, str) or not topic:
            raise SettingsError(f"inputs[{n}]: topic: required (the source topic's name)")
        try:
            mapping = InputMapping.from_config(table, where=f"inputs[{topic}]")
        except MappingError as exc:
            raise SettingsError(str(exc)) from None
        found.append(TopicInput(topic, mapping))
    topics = [i.topic for i in found]
    for topic in topics:
        if topics.count(topic) > 1:
            raise SettingsError(f"inputs[{topic}]: topic: given twice")
    return tuple(found)


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "localhost:9092"
    app_id: str = "healthstream"
    input_topic: str = "telemetry"
    output_topic: str = "health-scores"
    dead_letter_topic: str = "telemetry-deadletter"
    #: partitions of the input topic; the table's changelog is co-partitioned with it
    partitions: int = 4
    profile_path: str | None = None
    #: emit score_changed when the score moves by at least this much, or the zone changes
    min_step: int = 5
    #: how many of each account's latest event ids are remembered, to drop resent events
    dedup_memory: int = 32
    #: events further ahead of the worker's clock than this go to the dead-letter topic
    #: as ``future`` (0: accept any time)
    max_future_skew_s: float = 3600.0
    #: what to do with an event of a type this version does not know: "dead_letter" it,
    #: or "skip" it with a counter (for producers that run ahead of the workers)
    unknown_types: str = "dead_letter"
    #: what to do with an event whose record is keyed by something other than its
    #: account_id (a user id, nothing): "forward" it to its account's partition, keyed by
    #: the account, or "dead_letter" it as ``wrong_key``
    wrong_keys: str = "forward"
    #: most records fetched per batch (each event is still scored on its own)
    batch_max: int = 10_000
    #: account snapshots are written to the changelog at most once per flush: a flush comes
    #: this often, or sooner when this many accounts are waiting; input offsets are
    #: committed only up to the last flush
    flush_interval_s: float = 2.0
    flush_max_accounts: int = 50_000
    #: longest a fetch waits at the broker for new data: bounds latency on a quiet stream
    fetch_max_wait_ms: int = 20
    #: seconds between wall-clock ticks the leader appends to every input partition (0: off)
    tick_interval_s: float = 0.0
    #: the account table's store: "memory://", or "rocksdb://" for books larger than memory
    store: str = "memory://"
    #: with RocksDB, how many accounts' live states stay cached in memory
    max_cached_accounts: int = 100_000
    #: with the memory store, how many accounts stay live objects after a flush; the others
    #: are kept as their snapshot bytes, decoded on their next event (0: every account live)
    max_live_accounts: int = 0
    data_dir: str = ".healthstream-data"
    #: where every output is also kept: sqlite:///scores.db or postgresql://… ("" : nowhere)
    history_url: str = ""
    #: a JSONL file every output is appended to ("" : none)
    output_file: str = ""
    #: an HTTP endpoint every output is POSTed to, signed with ``webhook_secret``
    webhook_url: str = ""
    webhook_secret: str = field(default="", repr=False)
    webhook_max_attempts: int = 5
    webhook_timeout_s: float = 10.0
    webhook_queue_size: int = 1000
    web_port: int = 6066
    #: the address the HTTP API listens on, and other workers of the group reach it at
    #: ("0.0.0.0": every interface, reached at this machine's name)
    web_host: str = "127.0.0.1"
    web_enabled: bool = False
    #: also serve Faust's own ``/router/`` and ``/table/`` pages, which show the group's
    #: worker URLs, partitions and table contents; off: only the account API
    web_builtin_views: bool = False
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 10.0
    #: seconds between asking the brokers for the end offsets of the assigned partitions,
    #: so that consumer lag grows while the fetcher is stalled
    lag_probe_interval_s: float = 10.0
    #: port of the worker's Prometheus metrics (``GET /metrics``); 0: not served
    metrics_port: int = 9464
    #: the address the metrics server listens on ("0.0.0.0": every interface)
    metrics_addr: str = "0.0.0.0"
    #: how every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_security_protocol: str = "PLAINTEXT"
    #: with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, and the user's name and password
    #: or OAUTHBEARER (Confluent Cloud, MSK IAM), and its token provider
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    #: with OAUTHBEARER: ``module:callable``, importable by the worker, that returns an
    #: ``aiokafka.abc.AbstractTokenProvider`` (called once per client)
    kafka_sasl_oauth_token_provider: str = ""
    #: with SSL or SASL_SSL: the CA bundle brokers are verified against ("": the system's),
    #: and a client certificate and key for brokers that ask for one
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    kafka_ssl_key_password: str = field(default="", repr=False)
    #: source topics in other shapes (Segment, CloudEvents, mapped fields): each record is
    #: mapped to the contract and forwarded to the input topic, keyed by its account
    inputs: tuple[TopicInput, ...] = ()

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """A validated copy with the given fields replaced (None values are ignored)."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in known:
                raise SettingsError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
            default = getattr(self, key)
            if key == "inputs":
                changes[key] = parse_inputs(value)
                continue
            try:
                if isinstance(default, bool):
                    value = value if isinstance(value, bool) else _boolean(str(value))
                elif isinstance(default, int):
                    value = int(value)
                elif isinstance(default, float):
                    value = float(value)
                else:
                    value = str(value)
            except ValueError:
                raise SettingsError(
                    f"{key}: {value!r} is not a valid {type(default).__name__}"
                ) from None
            changes[key] = value
        result = replace(self, **changes)
        if result.lag_probe_interval_s <= 0:
            raise SettingsError(
                f"lag_probe_interval_s: must be above 0, got {result.lag_probe_interval_s}"
            )
        if result.partitions < 1:
            raise SettingsError(f"partitions: must be at least 1, got {result.partitions}")
        if not result.store.startswith(("memory://", "rocksdb://")):
            raise SettingsError(f"store: {result.store!r} (use memory:// or rocksdb://)")
        if result.unknown_types not in ("dead_letter", "skip"):
            raise SettingsError(
                f"unknown_types: {result.unknown_types!r} (use dead_letter or skip)"
            )
        if result.wrong_keys not in ("forward", "dead_letter"):
            raise SettingsError(f"wrong_keys: {result.wrong_keys!r} (use forward or dead_letter)")
        if result.dedup_memory < 1:
            raise SettingsError(f"dedup_memory: must be at least 1, got {result.dedup_memory}")
        if result.max_live_accounts < 0:
            raise SettingsError(
                f"max_live_accounts: must be 0 (no bound) or more, got {result.max_live_accounts}"
            )
        if result.min_step < 1:
            raise SettingsError(f"min_step: must be at least 1, got {result.min_step}")
        if not 0 <= result.metrics_port <= 65535:
            raise SettingsError(f"metrics_port: must be 0 to 65535, got {result.metrics_port}")
        own = {result.input_topic, result.output_topic, result.dead_letter_topic}
        for source in result.inputs:
            if source.topic in own:
                raise SettingsError(
                    f"inputs[{source.topic}]: topic: the worker's own topic; a source topic "
                    "is one the worker reads and maps into the input topic"
                )
        return _checked_kafka_security(result)


#: every setting's environment variable (``inputs``, a list of tables, only in a file)
ENVIRONMENT = {env_name(f.name): f.name for f in fields(Settings) if f.name != "inputs"}


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    """The settings the environment gives; a HEALTHSTREAM_ variable that names no setting
    is an error, not ignored (a misspelt one would otherwise change nothing, silently)."""
    known = {*ENVIRONMENT, *OTHER_VARIABLES}
    for var in env:
        if var.startswith("HEALTHSTREAM_") and var not in known:
            close = difflib.get_close_matches(var, sorted(known), 1, 0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"environment variable {var}: no such setting{hint}")
    return {name: env[var] for var, name in ENVIRONMENT.items() if var in env}


def _check_sasl_credentials(settings: Settings, protocol: str, mechanism: str, sasl: bool) -> None:
    """A user and password for PLAIN and SCRAM, a token provider for OAUTHBEARER, neither
    without SASL."""
    oauth = mechanism == "OAUTHBEARER"
    given = [
        name
        for name in (
            "kafka_sasl_username",
            "kafka_sasl_password",
            "kafka_sasl_oauth_token_provider",
        )
        if getattr(settings, name)
    ]
    if given and not sasl:
        raise SettingsError(
            f"{given[0]}: given, but kafka_security_protocol {protocol} does not use it "
            "(use SASL_PLAINTEXT or SASL_SSL)"
        )
    if not sasl:
        return
    if oauth and not settings.kafka_sasl_oauth_token_provider:
        raise SettingsError(
            "kafka_sasl_oauth_token_provider: required with kafka_sasl_mechanism OAUTHBEARER "
            "(module:callable returning an aiokafka AbstractTokenProvider; "
            "env KAFKA_SASL_OAUTH_TOKEN_PROVIDER)"
        )
    if oauth and (settings.kafka_sasl_username or settings.kafka_sasl_password):
        raise SettingsError(
            "kafka_sasl_username, kafka_sasl_password: not used with OAUTHBEARER (its token "
            "provider authenticates)"
        )
    if not oauth and settings.kafka_sasl_oauth_token_provider:
        raise SettingsError(
            f"kafka_sasl_oauth_token_provider: given, but kafka_sasl_mechanism is {mechanism} "
            "(use OAUTHBEARER)"
        )
    if not oauth and not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise SettingsError(
            f"kafka_sasl_username and kafka_sasl_password: both required with "
            f"kafka_security_protocol {protocol} (env KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)"
        )


def _checked_kafka_security(settings: Settings) -> Settings:
    """Protocol and mechanism upper-cased and known; credentials given where they are used.

    Secrets never appear in these messages: only the names of the settings do."""
    protocol = settings.kafka_security_protocol.upper()
    mechanism = settings.kafka_sasl_mechanism.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise SettingsError(
            f"kafka_security_protocol: {settings.kafka_security_protocol!r} "
            f"(use one of {', '.join(SECURITY_PROTOCOLS)})"
        )
    if mechanism not in SASL_MECHANISMS:
        raise SettingsError(
            f"kafka_sasl_mechanism: {settings.kafka_sasl_mechanism!r} "
            f"(use one of {', '.join(SASL_MECHANISMS)})"
        )
    sasl = protocol.startswith("SASL_")
    _check_sasl_credentials(settings, protocol, mechanism, sasl)
    tls_files = [
        name
        for name in (
            "kafka_ssl_cafile",
            "kafka_ssl_certfile",
            "kafka_ssl_keyfile",
            "kafka_ssl_key_password",
        )
        if getattr(settings, name)
    ]
    if tls_files and protocol not in ("SSL", "SASL_SSL"):
        raise SettingsError(
            f"{tls_files[0]}: given, but kafka_security_protocol {protocol} does not use TLS "
            "(use SSL or SASL_SSL)"
        )
    if bool(settings.kafka_ssl_certfile) != bool(settings.kafka_ssl_keyfile):
        raise SettingsError("kafka_ssl_certfile and kafka_ssl_keyfile: give both or neither")
    return replace(settings, kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism)


def load_settings(
    config_file: str | Path | None = None,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    # one validation over every source together: settings that go in pairs (a SASL user in
    # the file, its password in the environment) may come from different sources
    overrides: dict[str, Any] = {}
    env = os.environ if environ is None else environ
    if config_file is None:
        config_file = env.get(CONFIG_VARIABLE) or None
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{config_file}: {exc}") from exc
        overrides.update(data.get("healthstream", data))
    overrides.update(_environment(env))
    overrides.update({key: value for key, value in (cli or {}).items() if value is not None})
    return Settings().with_overrides(overrides)


def build_engine(settings: Settings) -> HealthEngine:
    """The scoring engine the settings describe (profile file and emission step)."""
    return HealthEngine(
        ScoringConfig(load_profile(settings.profile_path), settings.min_step, settings.dedup_memory)
    )
