"""A corpus of named records: each bad one is refused with its own reason, each good one decodes."""

import tomllib
from pathlib import Path

import pytest

from telemetry.codec import DEFAULT_MAX_FUTURE_SKEW_MS, REASONS, BadEvent, decode_event

CORPUS = Path(__file__).parent / "bad_inputs"
INDEX = tomllib.loads((CORPUS / "expected.toml").read_text())
REFUSED: dict[str, str] = INDEX["refused"]
ACCEPTED: dict[str, str] = INDEX["accepted"]
#: reasons only the worker gives, when it applies a decoded event
WORKER_REASONS = {"too_old", "unprocessable"}


def test_the_index_names_every_file_once() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "expected.toml"}
    assert files == set(REFUSED) | set(ACCEPTED)
    assert not set(REFUSED) & set(ACCEPTED)
    assert len(REFUSED) >= 20


def test_the_corpus_covers_every_reason_the_decoder_gives() -> None:
    assert set(REFUSED.values()) | {"future"} == REASONS - WORKER_REASONS


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_bad_record_is_refused_with_its_reason(name: str) -> None:
    with pytest.raises(BadEvent) as refused:
        decode_event((CORPUS / name).read_bytes())
    assert refused.value.reason == REFUSED[name]
    assert len(str(refused.value)) > 10  # and a message a person can act on


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_each_good_record_decodes(name: str) -> None:
    event = decode_event((CORPUS / name).read_bytes())
    assert event.type == ACCEPTED[name]
    assert event.ts_ms > 1_700_000_000_000


def test_an_event_from_the_future_is_refused_against_the_workers_clock() -> None:
    now = 1767225600000
    raw = b'{"event_id":"e","account_id":"a","type":"login","ts":%d}'
    assert DEFAULT_MAX_FUTURE_SKEW_MS == 3_600_000
    assert decode_event(raw % (now + 3_600_000), now_ms=now).ts_ms == now + 3_600_000
    with pytest.raises(BadEvent) as refused:
        decode_event(raw % (now + 3_600_001), now_ms=now)
    assert refused.value.reason == "future"
    assert "3,600 s ahead" in str(refused.value)
    with pytest.raises(BadEvent) as tick:
        decode_event(b'{"type":"tick","ts":%d}' % (now + 7_200_000), now_ms=now)
    assert tick.value.reason == "future"
    assert decode_event(raw % (now + 7_200_000), now_ms=now, max_future_skew_ms=10**8)
    # without a clock there is no check: history is replayed as it was written
    assert decode_event(raw % (now + 10**10)).ts_ms == now + 10**10


def test_the_future_is_checked_after_the_record_is_valid() -> None:
    """A record both from the future and broken is refused for what is broken."""
    raw = b'{"event_id":"e","account_id":"a","type":"login","ts":%d,"value":-1}'
    with pytest.raises(BadEvent) as refused:
        decode_event(raw % (1767225600000 + 10**9), now_ms=1767225600000)
    assert refused.value.reason == "bad_value"


def test_override_expiry_is_normalised_to_epoch_ms() -> None:
    event = decode_event((CORPUS / "good_manual_override_set.json").read_bytes())
    assert event.attrs["expires_at_ms"] == 1773651600000  # 2026-03-16T09:00:00Z
    assert event.attrs["score"] == 45 and event.attrs["reason"].startswith("Re-org")
