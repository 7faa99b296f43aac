"""Reaching a Kafka cluster: every client the project makes, waiting for the cluster to
answer, and creating the project's topics.

Every Kafka client (the worker's, the broker wait, ``produce``, the demo, the bench)
connects through ``client_options``, so each one honours the same TLS and SASL settings.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from stream.settings import Settings, SettingsError

log = logging.getLogger(__name__)

#: the keyword arguments of an aiokafka client that say how it connects
ClientOptions = Mapping[str, Any]
#: a plaintext connection: what a client gets when no settings are given
PLAINTEXT: ClientOptions = {"security_protocol": "PLAINTEXT"}


class BrokerError(RuntimeError):
    """A broker could not be started or reached."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL connections, from the settings' files; else None."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"kafka_ssl_cafile: {settings.kafka_ssl_cafile}: {exc}") from None
    if settings.kafka_ssl_certfile:
        try:
            context.load_cert_chain(
                settings.kafka_ssl_certfile,
                settings.kafka_ssl_keyfile,
                password=settings.kafka_ssl_key_password or None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(
                f"kafka_ssl_certfile, kafka_ssl_keyfile: {settings.kafka_ssl_certfile}, "
                f"{settings.kafka_ssl_keyfile}: {exc}"
            ) from None
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Security keyword arguments for every aiokafka client (producer, consumer, admin)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def token_provider(settings: Settings) -> AbstractTokenProvider:
    """The OAUTHBEARER token provider that ``kafka_sasl_oauth_token_provider`` names."""
    name = settings.kafka_sasl_oauth_token_provider
    module_name, _, attribute = name.partition(":")
    where = f"kafka_sasl_oauth_token_provider: {name!r}"
    if not module_name or not attribute:
        raise SettingsError(f"{where}: expected module:callable")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise SettingsError(f"{where}: cannot import it: {exc}") from None
    provider = factory()
    if not isinstance(provider, AbstractTokenProvider):
        raise SettingsError(
            f"{where}: returned {type(provider).__name__}, not an aiokafka AbstractTokenProvider"
        )
    return provider


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The same connection as ``client_options``, in the form Faust's app takes."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    # with an SSL context Faust speaks SASL_SSL, without one SASL_PLAINTEXT
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=token_provider(settings), ssl_context=context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def admin_client(
    bootstrap: str, options: ClientOptions = PLAINTEXT, **extra: Any
) -> AIOKafkaAdminClient:
    """An admin client of the cluster at ``bootstrap``, connecting as ``options`` say."""
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options, **extra)


def producer(settings: Settings, **extra: Any) -> AIOKafkaProducer:
    """A producer to the settings' cluster, connecting as the settings say."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, **client_options(settings), **extra
    )


def consumer(settings: Settings, **extra: Any) -> AIOKafkaConsumer:
    """A consumer of the settings' cluster, connecting as the settings say."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **client_options(settings), **extra
    )


async def cluster_id(bootstrap: str, timeout: float, options: ClientOptions = PLAINTEXT) -> str:
    """The cluster id from one metadata request; raises KafkaError, OSError or TimeoutError."""
    admin = admin_client(bootstrap, options, request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def wait_for_broker(
    bootstrap: str, timeout: float = 30.0, options: ClientOptions = PLAINTEXT
) -> str:
    """The cluster id, once the broker answers a metadata request; BrokerError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = min(5.0, max(deadline - time.monotonic(), 0.1))
            return await cluster_id(bootstrap, left, options)
        except (KafkaError, OSError, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"no Kafka broker answered at {bootstrap} in {timeout:g} s: {exc!r}"
                ) from exc
        await asyncio.sleep(0.2)


async def await_broker(
    bootstrap: str,
    report: Callable[[str], None],
    first_delay: float = 1.0,
    longest_delay: float = 30.0,
    give_up_after: float = 0.0,
    options: ClientOptions = PLAINTEXT,
) -> str:
    """Wait for the broker, saying so, with exponential backoff and jitter between tries.

    Returns the cluster id once it answers; with ``give_up_after`` > 0, raises BrokerError
    when it has not answered in that many seconds."""
    started = time.monotonic()
    delay = first_delay
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # one line per try from us, not one per refused connect
    try:
        return await _retry(
            bootstrap, options, report, started, delay, longest_delay, give_up_after
        )
    finally:
        quiet.setLevel(level)


async def _retry(
    bootstrap: str,
    options: ClientOptions,
    report: Callable[[str], None],
    started: float,
    delay: float,
    longest_delay: float,
    give_up_after: float,
) -> str:
    while True:
        try:
            return await cluster_id(bootstrap, 5.0, options)
        except (KafkaError, OSError, TimeoutError) as exc:
            waited = time.monotonic() - started
            if give_up_after > 0 and waited >= give_up_after:
                raise BrokerError(
                    f"no Kafka broker answered at {bootstrap} in {give_up_after:g} s: {exc}"
                ) from exc
            pause = delay * random.uniform(0.8, 1.2)
            report(
                f"no Kafka broker answers at {bootstrap} ({type(exc).__name__}); "
                f"retrying in {pause:.1f} s"
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, longest_delay)


async def create_topics(
    bootstrap: str,
    topics: dict[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
    options: ClientOptions = PLAINTEXT,
) -> None:
    """Create the missing topics with these partition counts (replication factor 1) and
    topic configs (by topic name, e.g. ``{"cleanup.policy": "compact"}``).

    Topics that exist are left as they are; one with another partition count is logged.
    """
    if bad := {name: count for name, count in topics.items() if count < 1}:
        raise ValueError(f"a topic needs at least one partition: {bad}")
    admin = admin_client(bootstrap, options)
    await admin.start()
    try:
        # ask for all topics: naming one in a metadata request makes Tansu (and Kafka with
        # auto.create.topics.enable) create it with the broker's default partition count
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        for name, count in topics.items():
            if existing.get(name, count) != count:
                log.warning("topic %s has %d partitions, not %d", name, existing[name], count)
        configs = configs or {}
        missing = [
            NewTopic(n, count, 1, topic_configs=dict(configs.get(n, {})))
            for n, count in topics.items()
            if n not in existing
        ]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for result in response.to_object()["topic_errors"]:
            error = for_code(result["error_code"]) if result["error_code"] else None
            if error is not None and error is not TopicAlreadyExistsError:
                raise error(f"creating topic {result['topic']}: {result.get('error_message')}")
    finally:
        await admin.close()
