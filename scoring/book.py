"""The accounts one process scores: states by account id, fed events and ticks."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from scoring.engine import HealthEngine
from windows.account import NO_DAY, AccountState
from windows.snapshot import decode_state
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

Output = dict[str, Any]


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

    def state(self, account_id: str) -> AccountState:
        held = self.states.get(account_id)
        if isinstance(held, AccountState):
            return held
        state = AccountState() if held is None else decode_state(held)
        self.states[account_id] = state
        return state

    def apply(self, event: TelemetryEvent) -> Output | None:
        """Apply an account's event; a tick must go through ``tick`` instead."""
        if event.type is EventType.TICK:
            raise ValueError("ticks advance many accounts: use AccountBook.tick")
        return self.engine.on_event(event.account_id, self.state(event.account_id), event)

    def tick(
        self, ts_ms: int, account_ids: Iterable[str]
    ) -> tuple[list[tuple[str, Output]], list[str]]:
        """Advance the given accounts to ``ts_ms``.

        Returns the score changes it caused and the accounts whose clock moved.
        """
        day = ts_ms // MS_PER_DAY
        outputs = []
        advanced = []
        for account_id in account_ids:
            state = self.state(account_id)
            if state.clock >= day or state.clock == NO_DAY:
                continue
            advanced.append(account_id)
            out = self.engine.on_tick(account_id, state, ts_ms)
            if out is not None:
                outputs.append((account_id, out))
        return outputs, advanced
