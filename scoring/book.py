"""The accounts one process scores: states by account id, fed events and ticks."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from scoring.engine import HealthEngine
from scoring.outputs import Output
from windows.account import AccountState
from windows.snapshot import decode_state
from windows.telemetry import EventType, TelemetryEvent

__all__ = ["AccountBook", "AlreadyApplied", "Output"]


class AlreadyApplied(ValueError):
    """A record at or before the account's log position: read again, already in the state."""


class AccountBook:
    """Account states held in any mapping; snapshot bytes found there are decoded on first use.

    The worker hands in its table's storage (which holds snapshot bytes after recovery from
    the changelog); ``healthstream replay`` hands in a plain dict.
    """

    def __init__(
        self, engine: HealthEngine, states: MutableMapping[str, Any] | None = None
    ) -> None:
        self.engine = engine
        self.states: MutableMapping[str, Any] = {} if states is None else states
        #: snapshots decoded so far: accounts read back after recovery, or after being kept
        #: as their snapshot (a bounded live set, a RocksDB cache miss)
        self.decoded = 0

    def state(self, account_id: str) -> AccountState:
        held = self.states.get(account_id)
        if isinstance(held, AccountState):
            return held
        if held is None:
            state = AccountState()
        else:
            state = decode_state(held)
            self.decoded += 1
        self.states[account_id] = state
        return state

    def apply(self, event: TelemetryEvent, position: tuple[int, int] | None = None) -> list[Output]:
        """Apply an account's event read at ``position`` (partition, offset) of the input log.

        Raises ``AlreadyApplied`` when the account's state already holds that position, and
        passes on the engine's ``DuplicateEvent`` and ``EventTooOld``. A tick must go through
        ``tick`` instead."""
        if event.type is EventType.TICK:
            raise ValueError("ticks advance many accounts: use AccountBook.tick")
        state = self.state(event.account_id)
        if position is not None:
            if state.already_applied(*position):
                raise AlreadyApplied(f"record {position} is already in the state")
            state.log_partition, state.log_offset = position
        return self.engine.on_event(event.account_id, state, event)

    def tick(
        self, ts_ms: int, account_ids: Iterable[str]
    ) -> tuple[list[tuple[str, Output]], list[str]]:
        """Advance the given accounts to ``ts_ms``.

        Returns what it caused to be emitted and the accounts whose state it changed.
        """
        engine = self.engine
        outputs = []
        advanced = []
        for account_id in account_ids:
            state = self.state(account_id)
            if not engine.tick_due(state, ts_ms):
                continue
            advanced.append(account_id)
            for out in engine.on_tick(account_id, state, ts_ms):
                outputs.append((account_id, out))
        return outputs, advanced
