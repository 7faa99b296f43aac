"""Snapshot layouts: 64-bit event-id hashes now, version 2's CRC-32s still read."""

import zlib
from array import array

import orjson
import pytest

from windows.account import AccountState, Series, event_id_hash
from windows.snapshot import (
    _HEADER,
    FACT_FIELDS,
    VERSION,
    SnapshotError,
    decode_state,
    encode_state,
    snapshot_zone,
)
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

DAY0 = 20_454  # 2026-01-01


def _state(ids: list[str]) -> AccountState:
    state = AccountState()
    for n, event_id in enumerate(ids):
        event = TelemetryEvent(event_id, "a", EventType.LOGIN, DAY0 * MS_PER_DAY + n, 1, "u")
        assert state.apply(event)
        state.remember(event_id_hash(event_id), 32)
    state.segment = "smb"
    return state


def _as_version_2(state: AccountState) -> bytes:
    """The state as version 2 wrote it: the same layout with 4-byte CRC-32s of the ids."""
    blob = encode_state(state)
    facts = orjson.dumps([getattr(state, name) for name in FACT_FIELDS])
    n_ids = len(state.recent_ids) // 8
    series = blob[_HEADER.size : len(blob) - 8 * n_ids - len(facts)]
    fields = list(_HEADER.unpack_from(blob, 0))
    fields[0] = 2
    crcs = array("I", [zlib.crc32(f"e{n}".encode()) for n in range(n_ids)]).tobytes()
    return _HEADER.pack(*fields) + series + crcs + facts


def test_event_ids_are_kept_as_8_byte_hashes() -> None:
    ids = [f"e{n}" for n in range(40)]
    state = _state(ids)
    blob = encode_state(state)
    assert blob[0] == VERSION == 3
    back = decode_state(blob)
    assert back.recent_ids == b"".join(event_id_hash(i) for i in ids[-32:])
    assert all(back.seen(event_id_hash(i)) for i in ids[-32:])
    assert not back.seen(event_id_hash(ids[0]))  # past the bound of 32
    assert encode_state(back) == blob
    assert len(back.recent_ids) == 8 * 32  # really 64 bits wide


def test_a_version_2_snapshot_is_read_with_its_crc32_memory_left_out() -> None:
    state = _state([f"e{n}" for n in range(5)])
    old = _as_version_2(state)
    assert old[0] == 2 and len(old) == len(encode_state(state)) - 4 * 5
    back = decode_state(old)
    assert back.recent_ids == b""  # CRC-32s match no 64-bit hash: the memory starts afresh
    assert back.total(Series.LOGINS, 14) == 5 and back.segment == "smb"
    assert (back.clock, back.log_offset) == (state.clock, state.log_offset)
    state.recent_ids = bytearray()
    assert encode_state(back) == encode_state(state)


def test_the_zone_is_read_without_decoding_the_rest() -> None:
    state = _state([f"e{n}" for n in range(40)])
    assert snapshot_zone(encode_state(state)) == ""
    for zone in ("healthy", "at_risk", "critical"):
        state.last_zone = zone
        assert snapshot_zone(encode_state(state)) == zone
        assert (
            snapshot_zone(_as_version_2(state))
            == zone
            == decode_state(encode_state(state)).last_zone
        )
    # dense rings too: a series with a count on every day of its 90
    dense = AccountState()
    for day in range(90):
        event = TelemetryEvent(f"d{day}", "a", EventType.LOGIN, (DAY0 + day) * MS_PER_DAY, 300, "u")
        assert dense.apply(event)
    dense.last_zone = "at_risk"
    blob = encode_state(dense)
    assert blob[_HEADER.size] == 0  # the ring is stored dense
    assert snapshot_zone(blob) == "at_risk"


def test_an_unreadable_snapshot_is_refused_when_its_zone_is_read() -> None:
    blob = encode_state(_state(["e1"]))
    with pytest.raises(SnapshotError):
        snapshot_zone(blob[:20])
    with pytest.raises(SnapshotError):
        snapshot_zone(b"\x09" + blob[1:])
