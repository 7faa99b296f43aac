"""The composite score: signals → weighted categories → 0-100 → zone."""

from __future__ import annotations

from dataclasses import dataclass

from scoring.profile import LoginGating, Profile, Weighting
from scoring.signals import SIGNALS
from windows.account import NO_SCORE, AccountState
from windows.telemetry import EventType

__all__ = ["NO_SCORE", "Scorecard"]


@dataclass(frozen=True, slots=True)
class Assessment:
    """An account's score at its clock, with the parts it is made of.

    ``signal_scores`` follows ``profile.signal_names``; ``NO_SCORE`` marks a signal without
    data, whose weight went to the other signals of its category.
    """

    score: int
    zone: str
    category_scores: dict[str, int | None]
    signal_scores: list[int]


class Scorecard:
    """A profile compiled for scoring on every event.

    Signal points are cached on the state with the clock they were computed at. While the
    clock stands still, an event recomputes only the signals its type can change; a new
    day recomputes them all. The cache is derived data: recomputing from scratch gives the
    same points, so a state restored from a snapshot scores the same.
    """

    def __init__(self, profile: Weighting, gating: LoginGating | None = None) -> None:
        """``gating``, for an API-driven account, leaves out or down-weights login signals."""
        self.profile = profile
        signals = [(c, s) for c in profile.categories for s in c.signals]
        self.kinds = [s.kind or s.name for _, s in signals]
        #: per signal, in order: its name, its category's name, its evidence function
        self.names = [s.name for _, s in signals]
        self.category_names = [c.name for c, _ in signals]
        self.evidences = [SIGNALS[kind].evidence for kind in self.kinds]
        self.scorers = [SIGNALS[kind].score for kind in self.kinds]
        self.params = [s.params for _, s in signals]
        factor = 1.0
        if gating is not None and gating.mode != "off":
            factor = 0.0 if gating.mode == "exclude" else gating.factor
        gated = set(gating.signals) if gating is not None else set()
        self.weights = [s.weight * (factor if s.name in gated else 1.0) for _, s in signals]
        self.categories = [
            (c.name, c.weight, range(start, start + len(c.signals)))
            for c, start in zip(
                profile.categories,
                _starts([len(c.signals) for c in profile.categories]),
                strict=True,
            )
        ]
        affected: dict[EventType, list[int]] = {}
        for i, (_, s) in enumerate(signals):
            for etype in SIGNALS[s.kind or s.name].inputs_for(s.params):
                affected.setdefault(etype, []).append(i)
        self.affected = {t: tuple(ix) for t, ix in affected.items()}
        #: per event type, the signals a repeat of it can move (``SignalDefinition.repeat_proof``)
        self.moved_by_repeats = {
            t: tuple(i for i in ix if not SIGNALS[self.kinds[i]].repeat_proof)
            for t, ix in self.affected.items()
        }
        self._shares: dict[tuple[bool, ...], list[float]] = {}

    def points(self, state: AccountState, changed_by: EventType | None) -> list[float | None]:
        cache = state.signal_cache
        if changed_by is None or cache is None or state.cache_clock != state.clock:
            cache = [f(state, p) for f, p in zip(self.scorers, self.params, strict=True)]
            state.signal_cache = cache
            state.cache_clock = state.clock
        else:
            for i in self.affected.get(changed_by, ()):
                cache[i] = self.scorers[i](state, self.params[i])
        return cache

    def repeat_moves(self, state: AccountState, changed_by: EventType) -> bool:
        """After a repeat of ``changed_by`` on the day the cached points were computed:
        recompute the signals it can move, and say whether any moved."""
        cache = state.signal_cache
        if cache is None or state.cache_clock != state.clock:
            return True
        moved = False
        for i in self.moved_by_repeats.get(changed_by, ()):
            value = self.scorers[i](state, self.params[i])
            if value != cache[i]:
                cache[i] = value
                moved = True
        return moved

    def composite(self, points: list[float | None]) -> tuple[float, dict[str, float | None]]:
        """The 0-100 composite (unrounded) and the category scores, from signal points."""
        weights = self.weights
        category_scores: dict[str, float | None] = {}
        total = 0.0
        total_weight = 0.0
        for name, category_weight, members in self.categories:
            acc = 0.0
            weight = 0.0
            for i in members:
                value = points[i]
                if value is not None:
                    acc += weights[i] * value
                    weight += weights[i]
            if weight == 0.0:
                category_scores[name] = None
                continue
            if category_weight == 0.0:
                category_scores[name] = acc / weight
                continue
            category_score = acc / weight
            category_scores[name] = category_score
            total += category_weight * category_score
            total_weight += category_weight
        return (total / total_weight if total_weight else 0.0), category_scores

    def score(self, state: AccountState, changed_by: EventType | None = None) -> int:
        """The composite score only: the per-event path."""
        return round(self.composite(self.points(state, changed_by))[0])

    def assess(self, state: AccountState, changed_by: EventType | None = None) -> Assessment:
        """The score with its breakdown, for an emitted change."""
        return self.breakdown(self.points(state, changed_by))

    def breakdown(
        self,
        points: list[float | None],
        composite: tuple[float, dict[str, float | None]] | None = None,
    ) -> Assessment:
        """``composite``: what ``composite(points)`` returned, when the caller has it."""
        total, categories = self.composite(points) if composite is None else composite
        score = round(total)
        return Assessment(
            score,
            self.profile.zone(score),
            {k: None if v is None else round(v) for k, v in categories.items()},
            [NO_SCORE if v is None else round(v) for v in points],
        )

    def effective_weights(self, signal_scores: list[int]) -> list[float]:
        """Each signal's share of the composite, given which signals had data (the same few
        patterns recur, so each is computed once)."""
        present = tuple([s != NO_SCORE for s in signal_scores])
        shares = self._shares.get(present)
        if shares is None:
            shares = self._shares[present] = self._effective_weights(signal_scores)
        return shares

    def _effective_weights(self, signal_scores: list[int]) -> list[float]:
        shares = [0.0] * len(signal_scores)
        outer = 0.0
        for _, category_weight, members in self.categories:
            inner = sum(self.weights[i] for i in members if signal_scores[i] != NO_SCORE)
            if not inner or not category_weight:
                continue
            outer += category_weight
            for i in members:
                if signal_scores[i] != NO_SCORE:
                    shares[i] = category_weight * self.weights[i] / inner
        return [s / outer for s in shares] if outer else shares


def _starts(sizes: list[int]) -> list[int]:
    starts, at = [], 0
    for n in sizes:
        starts.append(at)
        at += n
    return starts


def assess(state: AccountState, profile: Profile) -> Assessment:
    """Score a state from scratch (no cache): for tests and one-off reads."""
    state.signal_cache = None
    return Scorecard(profile).assess(state)
