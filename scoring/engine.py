"""Fold events into account state, score, detect, override, alert: decide what to emit.

Every event and tick is scored. What comes out, each with the account's next ``seq``:

- ``score_changed`` for an account's first score, and then when the score moved by at
  least ``min_step``, the zone changed, or the set of detector findings or overrides
  changed; it says which categories and signals moved it, which detectors fired with
  their evidence and which overrides apply;
- ``override_applied`` / ``override_cleared`` when an override starts or stops;
- ``alert`` for a fast score drop, entering critical, and the onsets the profile lists.

Every output carries the recommended action; the ``score_changed`` that enters a zone
carries the zone's playbook, and says why it was emitted (``emitted_for``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from scoring.alerts import Alert, AlertRules
from scoring.detectors import REST_DAYS, SEVERITY_RANK, DetectorSet, Finding
from scoring.model import NO_SCORE, Scorecard
from scoring.outputs import (
    AlertRaised,
    Common,
    Description,
    Output,
    ScoreChanged,
    SignalMove,
    SignalPoints,
    alert_raised,
    common,
    description,
    override_applied,
    override_cleared,
    score_changed,
    score_or_none,
)
from scoring.overrides import AppliedOverride, OverrideRules
from scoring.profile import Profile, Weighting
from windows.account import NO_DAY, AccountState, Series, event_id_hash
from windows.days import iso_day
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

OUTPUT_SCHEMA = 3
_NO_OUTPUTS: list[Output] = []


class EventTooOld(ValueError):
    """An event older than the longest window (90 days) before the account's clock."""


class DuplicateEvent(ValueError):
    """An event whose id is among the account's latest applied ids: a producer's resend."""


@dataclass(frozen=True)
class ScoringConfig:
    """The profile plus the emission rule; ``version`` goes on every output event."""

    profile: Profile
    min_step: int = 5
    #: how many of an account's latest event ids are remembered to drop resends
    dedup_memory: int = 32
    #: points above a better zone's threshold an account needs to climb back into it
    zone_margin: int = 3
    #: skip the evaluation of a repeat that moves no signal (``HealthEngine.on_event``):
    #: it cannot change what is emitted, so it is not part of ``version``
    skip_repeats: bool = True

    @property
    def version(self) -> str:
        text = (
            f"{self.profile.version}:{self.min_step}:{self.dedup_memory}:{self.zone_margin}:"
            f"{OUTPUT_SCHEMA}"
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Card:
    """How one account is scored: its segment's weighting, login gating, onboarding."""

    scorecard: Scorecard
    segment: str | None
    onboarding: bool
    gated: bool


class HealthEngine:
    """The pure per-account pipeline shared by the worker and ``healthstream replay``."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self.profile = profile = config.profile
        self.scorecard = Scorecard(profile)
        self.version = config.version
        self.detectors = DetectorSet(profile.detectors)
        self.overrides = OverrideRules(
            profile.overrides, profile.healthy_from, profile.at_risk_from
        )
        self.alerts = AlertRules(profile.alerts, profile.at_risk_from)
        self._cards: dict[tuple[str | None, bool, bool], Card] = {}
        self._playbooks = {
            zone: {"zone": zone, **playbook} for zone, playbook in profile.playbooks.items()
        }

    # -- what an account is scored with ------------------------------------------------------

    def card_for(self, state: AccountState) -> Card:
        """The account's card; chosen again when its facts change or a day passes."""
        card = state.card
        if card is not None and state.card_clock == state.clock:
            return card  # type: ignore[no-any-return]
        profile = self.profile
        onboarding = state.onboarding_days < profile.onboarding.days
        segment = profile.segment_for(state.segment, state.plan, state.seats)
        gated = self._api_driven(state)
        key = (segment.name if segment else None, onboarding, gated)
        found = self._cards.get(key)
        if found is None:
            weighting: Weighting = profile if segment is None else segment.weighting
            if onboarding and profile.onboarding.weighting is not None:
                weighting = profile.onboarding.weighting
            scorecard = Scorecard(weighting, profile.login_gating if gated else None)
            mark = onboarding and profile.onboarding.mode == "mark"
            found = self._cards[key] = Card(scorecard, key[0], mark, gated)
        if found is not card:
            state.signal_cache = None
        state.card = found
        state.card_clock = state.clock
        return found

    def _api_driven(self, state: AccountState) -> bool:
        gating = self.profile.login_gating
        if gating.mode == "off":
            return False
        if state.api_driven:
            return True
        # over the 30 complete days ending yesterday: the card is chosen once a day, and must
        # not depend on how much of today had been seen when it was chosen
        return (
            gating.auto
            and state.complete_total(Series.API_CALLS, 30) >= gating.min_api_calls_30d
            and state.complete_active_days(Series.LOGINS, 30) <= gating.max_login_days_30d
        )

    # -- events and ticks ---------------------------------------------------------------------

    def on_event(self, account_id: str, state: AccountState, event: TelemetryEvent) -> list[Output]:
        """Apply one event and return what it causes to be emitted (often nothing).

        Raises ``DuplicateEvent`` for an id among the account's latest ``dedup_memory``
        and ``EventTooOld`` for an event the windows no longer cover; neither changes the
        state."""
        id_hash = event_id_hash(event.event_id)
        if state.seen(id_hash):
            raise DuplicateEvent(f"event {event.event_id!r} was already applied")
        repeat = (
            self.config.skip_repeats and self._evaluated_today(state) and state.is_repeat(event)
        )
        if not state.apply(event):
            raise EventTooOld(
                f"event of {iso_day(event.ts_ms // MS_PER_DAY)} is more than 90 days before the "
                f"account's clock {iso_day(state.clock)}"
            )
        state.remember(id_hash, self.config.dedup_memory)
        if repeat and not state.card.scorecard.repeat_moves(state, event.type):
            return _NO_OUTPUTS
        return self.evaluate(account_id, state, event.ts_ms, event.type, event.ts_ms // MS_PER_DAY)

    @staticmethod
    def _evaluated_today(state: AccountState) -> bool:
        """Whether the account was evaluated at its clock, with no manual override to end:
        then an event that moves no signal changes nothing an evaluation reads (the same
        card, the detectors' readings of complete days, the overrides' facts), and the
        evaluation would say nothing new, as the last one already said it."""
        clock = state.clock
        return (
            state.card is not None
            and state.card_clock == clock
            and state.cache_clock == clock
            and state.daily_clock == clock
            and state.manual_override is None
            and "manual" not in state.active_overrides
        )

    def tick_due(self, state: AccountState, ts_ms: int) -> bool:
        """Whether a tick at ``ts_ms`` changes the account: a new day, or an expiring override."""
        if state.clock == NO_DAY:
            return False
        if ts_ms // MS_PER_DAY > state.clock:
            return True
        manual = state.manual_override
        return manual is not None and ts_ms >= self.overrides.manual_expiry(manual)

    def on_tick(self, account_id: str, state: AccountState, ts_ms: int) -> list[Output]:
        """Advance a (possibly silent) account's clock and re-evaluate it."""
        if not self.tick_due(state, ts_ms):
            return _NO_OUTPUTS
        state.advance_to(ts_ms // MS_PER_DAY)
        if ts_ms > state.now_ms:
            state.now_ms = ts_ms
        return self.evaluate(account_id, state, ts_ms)

    def evaluate(
        self,
        account_id: str,
        state: AccountState,
        ts_ms: int,
        changed_by: EventType | None = None,
        event_day: int = NO_DAY,
    ) -> list[Output]:
        ended_by: dict[str, str] = {}
        manual = state.manual_override
        if manual is not None and self.overrides.manual_expired(state):
            state.manual_override = None
            ended_by["manual"] = "expired"
        elif manual is None and "manual" in state.active_overrides:
            ended_by["manual"] = "cleared by a manual_override clear event"
        card = self.card_for(state)
        scorecard = card.scorecard
        points = scorecard.points(state, changed_by)
        composite = scorecard.composite(points)
        computed = round(composite[0])
        findings = self.detectors.evaluate(state, changed_by, event_day)
        score, applied, free = self.overrides.apply(
            state, computed, findings, card.onboarding, self.profile.detectors.cap_score
        )
        zone = self._zone(card, score, state)
        names = [o.name for o in applied]
        keys = [f.key for f in findings]
        reasons = self._emit_reasons(state, score, zone, names, keys)
        if not reasons:
            # nothing to say, but alerts still watch the score (a slow slide adds up)
            alerts = self.alerts.check(state, score, free, zone, findings, (), ())
            if not alerts:
                return _NO_OUTPUTS
            base = self._base(account_id, state, score, zone, ts_ms, findings, applied)
            moved = self._moved_signals(state, scorecard, scorecard.breakdown(points).signal_scores)
            previous = state.last_score
            return [self._alert(base, state, alert, previous, findings, moved) for alert in alerts]
        return self._emit(
            account_id,
            state,
            ts_ms,
            card,
            composite,
            (score, free),
            zone,
            findings,
            applied,
            ended_by,
            reasons,
        )

    def _emit_reasons(
        self, state: AccountState, score: int, zone: str, overrides: list[str], findings: list[str]
    ) -> list[str]:
        """Why this picture is worth a ``score_changed`` (none: it is not): the first score
        (``first``), a move of at least ``min_step`` (``step``), another zone (``zone``),
        other findings (``findings``) or overrides (``overrides``) in force."""
        previous = state.last_score
        if previous == NO_SCORE:
            return ["first"]
        reasons: list[str] = []
        if abs(score - previous) >= self.config.min_step:
            reasons.append("step")
        if zone != state.last_zone:
            reasons.append("zone")
        if findings != state.active_findings:
            reasons.append("findings")
        if overrides != state.active_overrides:
            reasons.append("overrides")
        return reasons

    def describe(self, account_id: str, state: AccountState) -> Description:
        """The account's whole picture now: every signal, finding and override, nothing emitted.

        What ``healthstream explain`` prints and what a query for one account answers."""
        card = self.card_for(state)
        scorecard = card.scorecard
        points = scorecard.points(state, None)
        assessment = scorecard.breakdown(points)
        findings = self.detectors.evaluate(state, None)
        score, applied, _ = self.overrides.apply(
            state, assessment.score, findings, card.onboarding, self.profile.detectors.cap_score
        )
        zone = self._zone(card, score, state)
        shares = scorecard.effective_weights(assessment.signal_scores)
        base = self._base(account_id, state, score, zone, state.now_ms, findings, applied)
        signals: list[SignalPoints] = [
            {
                "signal": scorecard.names[i],
                "category": scorecard.category_names[i],
                "score": score_or_none(value),
                "weight_share": round(shares[i], 4),
                "evidence": scorecard.evidences[i](state, scorecard.params[i]),
            }
            for i, value in enumerate(assessment.signal_scores)
        ]
        return description(
            base,
            state.seq,
            self._playbooks.get(zone),
            assessment.score,
            assessment.category_scores,
            signals,
            [f.as_output(self.profile.detectors.action(f)) for f in findings],
            [o.as_output() for o in applied],
            card.segment,
            card.gated,
        )

    def _zone(self, card: Card, score: int, state: AccountState) -> str:
        """The zone for ``score``, with hysteresis, never back to a zone left within the
        last day (``REST_DAYS``): a zone change is not undone within 24 hours."""
        if card.onboarding:
            return "onboarding"
        previous = state.last_zone
        zone = card.scorecard.profile.zone_after(score, previous, self.config.zone_margin)
        if zone != previous and state.resting.get(f"zone:{zone}", NO_DAY) >= state.clock:
            return previous
        return zone

    # -- outputs ------------------------------------------------------------------------------

    def _emit(
        self,
        account_id: str,
        state: AccountState,
        ts_ms: int,
        card: Card,
        composite: tuple[float, dict[str, float | None]],
        scores: tuple[int, int],
        zone: str,
        findings: list[Finding],
        applied: list[AppliedOverride],
        ended_by: dict[str, str],
        reasons: list[str],
    ) -> list[Output]:
        """A score change, the overrides it applied and cleared, and the alerts it raised;
        the account's emission memory moved on to this picture (``scores``: the score and
        the score before overrides)."""
        score, free = scores
        base = self._base(account_id, state, score, zone, ts_ms, findings, applied)
        before_overrides = state.active_overrides
        before_findings = set(state.active_findings)
        previous = state.last_score
        changed, moved, left_zone = self._score_changed(
            base, state, card, composite, findings, applied, reasons
        )
        emitted: list[Output] = [changed]
        new_overrides = [o for o in applied if o.name not in before_overrides]
        emitted += self._override_edges(base, state, applied, new_overrides, ended_by)
        keys = [f.key for f in findings]
        self._rest(state, keys, left_zone)
        state.active_findings = keys
        onsets = [
            (f, self.profile.detectors.action(f)) for f in findings if f.key not in before_findings
        ]
        for alert in self.alerts.check(state, score, free, zone, findings, onsets, new_overrides):
            emitted.append(self._alert(base, state, alert, previous, findings, moved))
        return emitted

    def _score_changed(
        self,
        base: Common,
        state: AccountState,
        card: Card,
        composite: tuple[float, dict[str, float | None]],
        findings: list[Finding],
        applied: list[AppliedOverride],
        reasons: list[str],
    ) -> tuple[ScoreChanged, list[SignalMove], str]:
        """The ``score_changed`` output, the signals that moved, and the zone left ("" when
        the zone stays); the account's last score, zone and signal points become these."""
        scorecard = card.scorecard
        assert state.signal_cache is not None  # filled by points()
        assessment = scorecard.breakdown(state.signal_cache, composite)
        state.seq += 1
        moved = self._moved_signals(state, scorecard, assessment.signal_scores)
        changed = score_changed(
            base,
            state.seq,
            reasons,
            self._playbooks.get(base["zone"]),
            state.last_score,
            state.last_zone,
            assessment.score,
            assessment.category_scores,
            moved,
            [f.as_output(self.profile.detectors.action(f)) for f in findings],
            [o.as_output() for o in applied],
            card.segment,
            card.gated,
        )
        zone = base["zone"]
        left_zone = state.last_zone if zone != state.last_zone else ""
        state.last_score = base["score"]
        state.last_zone = zone
        state.last_signal_scores = assessment.signal_scores
        return changed, moved, left_zone

    def _override_edges(
        self,
        base: Common,
        state: AccountState,
        applied: list[AppliedOverride],
        new_overrides: list[AppliedOverride],
        ended_by: dict[str, str],
    ) -> list[Output]:
        """An ``override_applied`` per override new in force, an ``override_cleared`` per
        override no longer in force; the account's overrides in force become ``applied``."""
        edges: list[Output] = []
        for override in new_overrides:
            state.seq += 1
            edges.append(override_applied(base, state.seq, override.as_output()))
        names = [o.name for o in applied]
        for name in state.active_overrides:
            if name not in names:
                state.seq += 1
                reason = ended_by.get(name, "its condition no longer holds")
                edges.append(override_cleared(base, state.seq, name, reason))
        state.active_overrides = names
        return edges

    def _rest(self, state: AccountState, keys: list[str], left_zone: str) -> None:
        """What an emission just ended rests through ``REST_DAYS`` more days: the findings
        turned off and the zone left. Only here, never from a query, so that reading an
        account changes nothing it will say."""
        resting = state.resting
        if resting:
            for key in [k for k, until in resting.items() if until < state.clock]:
                del resting[key]
        if keys != state.active_findings:
            self.detectors.turned_off(state, state.active_findings, keys)
        if left_zone and left_zone != "onboarding":
            resting[f"zone:{left_zone}"] = state.clock + REST_DAYS

    def _alert(
        self,
        base: Common,
        state: AccountState,
        alert: Alert,
        previous: int,
        findings: list[Finding],
        moved: list[SignalMove],
    ) -> AlertRaised:
        """An alert with what a CSM needs to act on it: the dates, the score's move, the
        findings in force and the signals that moved it (largest impact first)."""
        state.seq += 1
        evidence = {
            **alert.evidence,
            "as_of": iso_day(state.clock),
            "score": base["score"],
            "previous_score": score_or_none(previous),
            "findings": [{"finding": f.key, "severity": f.severity} for f in findings],
            "signals_moved": [
                {k: m[k] for k in ("signal", "previous", "score", "delta")} for m in moved[:3]
            ],
        }
        return alert_raised(base, state.seq, alert.alert, alert.severity, evidence, alert.action)

    def _base(
        self,
        account_id: str,
        state: AccountState,
        score: int,
        zone: str,
        ts_ms: int,
        findings: list[Finding],
        applied: list[AppliedOverride],
    ) -> Common:
        return common(
            account_id,
            score,
            zone,
            self._recommended(zone, findings, applied),
            ts_ms,
            state.clock,
            self.version,
        )

    def _recommended(
        self, zone: str, findings: list[Finding], applied: list[AppliedOverride]
    ) -> str:
        """The action of the most severe override or finding; else the zone's first play."""
        best: tuple[int, str] | None = None
        for o in applied:
            if o.name == "detector_cap":
                continue  # it mirrors a finding, whose own action is the one to take
            rank = SEVERITY_RANK.get(o.severity, 0)
            if best is None or rank > best[0]:
                best = (rank, o.action)
        for f in findings:
            rank = SEVERITY_RANK[f.severity]
            if best is None or rank > best[0]:
                best = (rank, self.profile.detectors.action(f))
        if best is not None:
            return best[1]
        playbook = self.profile.playbooks.get(zone)
        return str(playbook["actions"][0]) if playbook else ""

    def _moved_signals(
        self, state: AccountState, scorecard: Scorecard, scores: list[int]
    ) -> list[SignalMove]:
        """The signals whose points changed since the last emission, largest impact first."""
        before = state.last_signal_scores
        if len(before) != len(scores):
            before = [NO_SCORE] * len(scores)
        weights = scorecard.effective_weights(scores)
        names = scorecard.names
        categories = scorecard.category_names
        evidences = scorecard.evidences
        params = scorecard.params
        moved: list[SignalMove] = []
        for i, now in enumerate(scores):
            then = before[i]
            if now == then:
                continue
            delta = (0 if now == NO_SCORE else now) - (0 if then == NO_SCORE else then)
            moved.append(
                {
                    "signal": names[i],
                    "category": categories[i],
                    "score": score_or_none(now),
                    "previous": score_or_none(then),
                    "delta": delta,
                    "impact": round(delta * weights[i], 1),
                    "evidence": evidences[i](state, params[i]),
                }
            )
        moved.sort(key=lambda m: (-abs(m["impact"]), m["signal"]))
        return moved
