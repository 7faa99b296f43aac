"""Fold events into account state, rescore, and decide when a score change is worth emitting."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scoring.model import NO_SCORE, Scorecard
from scoring.profile import Profile
from scoring.signals import SIGNALS
from windows.account import AccountState
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

OUTPUT_SCHEMA = 1


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ScoringConfig:
    """The profile plus the emission rule; ``version`` goes on every output event."""

    profile: Profile
    min_step: int = 5

    @property
    def version(self) -> str:
        text = f"{self.profile.version}:{self.min_step}:{OUTPUT_SCHEMA}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class HealthEngine:
    """The pure per-account pipeline shared by the worker and ``healthstream replay``."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self.profile = config.profile
        self.scorecard = Scorecard(config.profile)
        self.version = config.version
        self._names = self.profile.signal_names
        self._params = [s.params for c in self.profile.categories for s in c.signals]
        self._categories = [c.name for c in self.profile.categories for _ in c.signals]

    def on_event(
        self, account_id: str, state: AccountState, event: TelemetryEvent
    ) -> dict[str, Any] | None:
        """Apply one event and return a ``score_changed`` output event, if the score moved."""
        if not state.apply(event):
            return None
        return self.rescore(account_id, state, event.ts_ms, event.type)

    def on_tick(self, account_id: str, state: AccountState, ts_ms: int) -> dict[str, Any] | None:
        """Advance a (possibly silent) account's clock; rescore when its day changed."""
        if not state.advance_to(ts_ms // MS_PER_DAY):
            return None
        return self.rescore(account_id, state, ts_ms)

    def rescore(
        self,
        account_id: str,
        state: AccountState,
        ts_ms: int,
        changed_by: EventType | None = None,
    ) -> dict[str, Any] | None:
        score = self.scorecard.score(state, changed_by)
        zone = self.profile.zone(score)
        previous = state.last_score
        if (
            previous != NO_SCORE
            and abs(score - previous) < self.config.min_step
            and zone == state.last_zone
        ):
            return None
        assert state.signal_cache is not None  # just filled by score()
        a = self.scorecard.breakdown(state.signal_cache)
        moved = self._moved_signals(state, a.signal_scores)
        state.seq += 1
        out: dict[str, Any] = {
            "kind": "score_changed",
            "account_id": account_id,
            "seq": state.seq,
            "score": score,
            "previous_score": None if previous == NO_SCORE else previous,
            "zone": zone,
            "previous_zone": state.last_zone or None,
            "categories": a.category_scores,
            "signals": moved,
            "event_time": _iso(ts_ms),
            "as_of": _iso(state.clock * MS_PER_DAY)[:10],
            "config_version": self.version,
        }
        state.last_score = score
        state.last_zone = zone
        state.last_signal_scores = a.signal_scores
        return out

    def _moved_signals(self, state: AccountState, scores: list[int]) -> list[dict[str, Any]]:
        """The signals whose points changed since the last emission, largest impact first."""
        before = state.last_signal_scores or [NO_SCORE] * len(scores)
        weights = self.scorecard.effective_weights(scores)
        moved: list[dict[str, Any]] = []
        for i, (now, then) in enumerate(zip(scores, before, strict=True)):
            if now == then:
                continue
            delta = (0 if now == NO_SCORE else now) - (0 if then == NO_SCORE else then)
            name = self._names[i]
            moved.append(
                {
                    "signal": name,
                    "category": self._categories[i],
                    "score": None if now == NO_SCORE else now,
                    "previous": None if then == NO_SCORE else then,
                    "delta": delta,
                    "impact": round(delta * weights[i], 1),
                    "evidence": SIGNALS[name].evidence(state, self._params[i]),
                }
            )
        moved.sort(key=lambda m: (-abs(float(m["impact"])), str(m["signal"])))
        return moved
