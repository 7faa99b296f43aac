"""Kafka security settings: from file and environment to Faust and to aiokafka, secrets hidden."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream.app import create_app
from stream.kafka import client_options, faust_credentials, token_provider
from stream.settings import ENVIRONMENT, Settings, SettingsError, load_settings

PASSWORD = "pw-Zq81-never-shown"
KEY_PASSWORD = "key-pw-Rt55-never-shown"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate (CA and client certificate at once) and its encrypted key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: no certificate to test with")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=kafka.healthstream.test",
            "-passout",
            f"pass:{KEY_PASSWORD}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return {"cert": cert, "key": key}


def sasl_ssl_environment(tls_files: dict[str, Path]) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "scorer",
        "KAFKA_SASL_PASSWORD": PASSWORD,
        "KAFKA_SSL_CAFILE": str(tls_files["cert"]),
        "KAFKA_SSL_CERTFILE": str(tls_files["cert"]),
        "KAFKA_SSL_KEYFILE": str(tls_files["key"]),
        "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
    }


def test_every_security_setting_has_its_environment_variable() -> None:
    names = {
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "kafka_ssl_key_password",
        "kafka_sasl_oauth_token_provider",
    }
    assert names <= set(ENVIRONMENT.values())
    assert all(var.startswith("KAFKA_") for var, name in ENVIRONMENT.items() if name in names)


def test_environment_reaches_aiokafka_and_faust_and_secrets_stay_hidden(
    tls_files: dict[str, Path],
) -> None:
    settings = load_settings(environ=sasl_ssl_environment(tls_files))
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    for shown in (repr(settings), str(settings)):
        assert PASSWORD not in shown and KEY_PASSWORD not in shown
        assert "scorer" in shown  # the user name is no secret

    options = client_options(settings)
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "scorer",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    subjects = [dict(x[0] for x in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "kafka.healthstream.test"} in subjects

    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert PASSWORD not in repr(credentials)
    faust_auth = dict(credentials_to_aiokafka_auth(credentials))
    assert faust_auth.pop("ssl_context").get_ca_certs() == context.get_ca_certs()
    assert faust_auth == options

    async def build_clients() -> None:
        # aiokafka checks protocol, mechanism, credentials and context as a client is made
        full = client_options(settings)
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", **full)
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", **full)
        admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9", **full)
        await producer.stop()
        await consumer.stop()
        await admin.close()
        no_context = {k: v for k, v in full.items() if k != "ssl_context"}
        with pytest.raises(ValueError, match="ssl_context"):
            AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9", **no_context)

    asyncio.run(build_clients())


def test_ssl_alone_gives_faust_an_ssl_context(tls_files: dict[str, Path]) -> None:
    settings = load_settings(
        environ={"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(tls_files["cert"])}
    )
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"
    assert set(client_options(settings)) == {"security_protocol", "ssl_context"}
    assert faust_credentials(Settings()) is None
    assert client_options(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_a_user_in_the_file_and_the_password_in_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "healthstream.toml"
    config.write_text(
        '[healthstream]\nkafka_security_protocol = "SASL_PLAINTEXT"\n'
        'kafka_sasl_mechanism = "SCRAM-SHA-256"\nkafka_sasl_username = "scorer"\n'
    )
    settings = load_settings(config, environ={"KAFKA_SASL_PASSWORD": PASSWORD})
    options = client_options(settings)
    assert options["sasl_plain_password"] == PASSWORD
    assert options["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in options
    credentials = faust_credentials(settings)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol: 'TLS'"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"},
            "kafka_sasl_mechanism: 'GSSAPI'",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": PASSWORD},
            "kafka_sasl_username and kafka_sasl_password: both required",
        ),
        ({"KAFKA_SASL_PASSWORD": PASSWORD}, "kafka_sasl_password: given, but"),
        ({"KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD}, "kafka_ssl_key_password: given, but"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/etc/hostname"},
            "kafka_ssl_certfile and kafka_ssl_keyfile: give both",
        ),
    ],
)
def test_bad_security_settings_name_the_setting_never_the_secret(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert named in str(caught.value)
    assert PASSWORD not in str(caught.value) and KEY_PASSWORD not in str(caught.value)


def test_unreadable_tls_files_name_the_setting_never_the_key_password(
    tls_files: dict[str, Path], tmp_path: Path
) -> None:
    missing = load_settings(
        environ={"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(tmp_path / "no.pem")}
    )
    with pytest.raises(SettingsError, match="kafka_ssl_cafile: .*no.pem"):
        client_options(missing)
    wrong = load_settings(
        environ={
            **sasl_ssl_environment(tls_files),
            "KAFKA_SSL_KEY_PASSWORD": "not-the-key-password",
        }
    )
    with pytest.raises(SettingsError, match="kafka_ssl_certfile, kafka_ssl_keyfile") as caught:
        faust_credentials(wrong)
    assert "not-the-key-password" not in str(caught.value)


def test_the_worker_app_connects_with_the_credentials(tls_files: dict[str, Path]) -> None:
    settings = load_settings(environ=sasl_ssl_environment(tls_files)).with_overrides(
        {"metrics_port": 0}
    )
    app = create_app(settings)
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["sasl_mechanism"] == "SCRAM-SHA-512"
    assert PASSWORD not in repr(app.conf.broker_credentials)


class StaticToken(AbstractTokenProvider):
    """A token provider for tests: always the same token."""

    async def token(self) -> str:
        return "token-Xy12-never-shown"


def oauth_environment(provider: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "oauthbearer",
        "KAFKA_SASL_OAUTH_TOKEN_PROVIDER": provider,
    }


def test_oauthbearer_takes_its_token_provider_from_the_hook_for_every_client() -> None:
    settings = load_settings(environ=oauth_environment(f"{__name__}:StaticToken"))
    assert settings.kafka_sasl_mechanism == "OAUTHBEARER"
    options = client_options(settings)
    provider = options.pop("sasl_oauth_token_provider")
    assert isinstance(provider, StaticToken)
    assert options == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"}
    credentials = faust_credentials(settings)
    assert isinstance(credentials, OAuthCredentials)
    faust_auth = dict(credentials_to_aiokafka_auth(credentials))
    assert isinstance(faust_auth.pop("sasl_oauth_token_provider"), StaticToken)
    assert faust_auth == {**options, "ssl_context": None}

    async def build_clients() -> None:
        # aiokafka refuses OAUTHBEARER without a provider as the client is made
        full = client_options(settings)
        await AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", **full).stop()
        await AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9", **full).close()

    asyncio.run(build_clients())


@pytest.mark.parametrize(
    ("provider", "named"),
    [
        ("no_colon_here", "expected module:callable"),
        ("no.such.module:make", "cannot import it"),
        (f"{__name__}:no_such_name", "cannot import it"),
        ("builtins:object", "not an aiokafka AbstractTokenProvider"),
    ],
)
def test_a_token_provider_that_cannot_be_used_is_named(provider: str, named: str) -> None:
    settings = load_settings(environ=oauth_environment(provider))
    with pytest.raises(SettingsError, match="kafka_sasl_oauth_token_provider") as caught:
        token_provider(settings)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "kafka_sasl_oauth_token_provider: required",
        ),
        (
            {**oauth_environment(f"{__name__}:StaticToken"), "KAFKA_SASL_USERNAME": "scorer"},
            "not used with OAUTHBEARER",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_USERNAME": "scorer",
                "KAFKA_SASL_PASSWORD": PASSWORD,
                "KAFKA_SASL_OAUTH_TOKEN_PROVIDER": f"{__name__}:StaticToken",
            },
            "kafka_sasl_oauth_token_provider: given, but kafka_sasl_mechanism is PLAIN",
        ),
        (
            {"KAFKA_SASL_OAUTH_TOKEN_PROVIDER": f"{__name__}:StaticToken"},
            "kafka_sasl_oauth_token_provider: given, but kafka_security_protocol PLAINTEXT",
        ),
    ],
)
def test_oauthbearer_settings_that_do_not_fit_are_refused(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert named in str(caught.value)
    assert PASSWORD not in str(caught.value)
