"""The sinks a worker delivers its outputs to, besides its output topic, from settings."""

from __future__ import annotations

from sinks import AsyncSink, JsonlFileSink, RetryPolicy, ScoreHistory, ThreadedSink, WebhookSink
from sinks.webhook import GiveUp
from stream.settings import Settings, SettingsError


def build_sinks(settings: Settings, give_up: GiveUp) -> list[AsyncSink]:
    """History store, JSONL file and webhook, each only when its setting is given.

    ``give_up`` receives what the webhook gives up on (the worker dead-letters it)."""
    sinks: list[AsyncSink] = []
    if settings.history_url:
        sinks.append(ThreadedSink(ScoreHistory(settings.history_url)))
    if settings.output_file:
        sinks.append(ThreadedSink(JsonlFileSink(settings.output_file)))
    if settings.webhook_url:
        if not settings.webhook_secret:
            raise SettingsError(
                "webhook_secret: required with webhook_url (env HEALTHSTREAM_WEBHOOK_SECRET): "
                "every request is signed with it"
            )
        try:
            sinks.append(
                WebhookSink(
                    settings.webhook_url,
                    settings.webhook_secret,
                    give_up,
                    retry=RetryPolicy(max_attempts=settings.webhook_max_attempts),
                    timeout_s=settings.webhook_timeout_s,
                    queue_size=settings.webhook_queue_size,
                )
            )
        except ValueError as exc:
            raise SettingsError(f"webhook: {exc}") from exc
    return sinks
