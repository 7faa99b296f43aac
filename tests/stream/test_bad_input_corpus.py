"""A corpus of named bad records: each is refused with its own reason, never anything else."""

import tomllib
from pathlib import Path

import pytest

from stream.codec import REASONS, BadEvent, decode_event

CORPUS = Path(__file__).parent / "bad_inputs"
EXPECTED: dict[str, str] = tomllib.loads((CORPUS / "expected.toml").read_text())["expected"]


def test_the_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "expected.toml"}
    assert files == set(EXPECTED) and len(files) >= 20
    assert set(EXPECTED.values()) <= REASONS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_record_is_refused_with_its_reason(name: str) -> None:
    with pytest.raises(BadEvent) as refused:
        decode_event((CORPUS / name).read_bytes())
    assert refused.value.reason == EXPECTED[name]
    assert str(refused.value)  # and a message a person can act on


def test_an_event_from_the_future_is_refused_against_the_workers_clock() -> None:
    now = 1767225600000
    raw = b'{"event_id":"e","account_id":"a","type":"login","ts":%d}'
    assert decode_event(raw % (now + 3_599_000), now_ms=now).ts_ms == now + 3_599_000
    with pytest.raises(BadEvent) as refused:
        decode_event(raw % (now + 7_200_000), now_ms=now)
    assert refused.value.reason == "future"
    with pytest.raises(BadEvent):
        decode_event(b'{"type":"tick","ts":%d}' % (now + 7_200_000), now_ms=now)
    assert decode_event(raw % (now + 7_200_000), now_ms=now, max_future_skew_ms=10**8)
