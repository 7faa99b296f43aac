"""``healthstream explain``: one account's score, and why, after an offline replay."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from scoring.book import AccountBook
from scoring.engine import HealthEngine
from scoring.feed import feed
from scoring.outputs import Description, Output
from telemetry.codec import OFFLINE_MIN_TS_MS, BadEvent, event_from_mapping, parse_record
from windows.telemetry import EventType, TelemetryEvent

BAR = "█"


def explain_account(
    lines: Iterable[bytes], account_id: str, engine: HealthEngine
) -> tuple[Description | None, list[Output]]:
    """Replay the account's events and every tick from contract lines (only the lines that
    name the account, or a tick, are decoded); its description now and all it emitted."""
    return explain_events(_account_lines(lines, account_id), account_id, engine)


def _account_lines(lines: Iterable[bytes], account_id: str) -> Iterator[TelemetryEvent]:
    needle = account_id.encode()
    for line in lines:
        if needle not in line and b"tick" not in line:
            continue
        try:
            # an offline tool: any date a log can hold (1970 on), as replay takes it
            raw = line.rstrip(b"\r\n")
            yield event_from_mapping(parse_record(raw), min_ts_ms=OFFLINE_MIN_TS_MS)
        except BadEvent:
            continue


def explain_events(
    events: Iterable[TelemetryEvent | BadEvent], account_id: str, engine: HealthEngine
) -> tuple[Description | None, list[Output]]:
    """The same over decoded events in time order (a mapped file's, say); rejected
    records are passed over."""
    book = AccountBook(engine)
    history: list[Output] = []
    for event in events:
        if isinstance(event, BadEvent):
            continue
        if event.type is EventType.TICK:
            if account_id not in book.states:
                continue
        elif event.account_id != account_id:
            continue
        history.extend(out for _, out in feed(book, event, tick_accounts=[account_id]).outputs)
    if account_id not in book.states:
        return None, history
    return engine.describe(account_id, book.state(account_id)), history


def _evidence(evidence: dict[str, Any]) -> str:
    def shown(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(map(str, value)) if value else "none"
        return str(value)

    return "; ".join(f"{k} {shown(v)}" for k, v in evidence.items() if v is not None)


def render(
    description: Description, history: list[Output], profile_name: str, last: int = 10
) -> str:
    d = description
    lines = [
        f"Account {d['account_id']}, as of {d['as_of']} "
        f"(profile {profile_name}, config {d['config_version']}"
        + (f", segment {d['segment']}" if d["segment"] else "")
        + (", login-gated" if d["login_gated"] else "")
        + ")",
        "",
        f"Score {d['score']}/100, zone {d['zone'].upper()}"
        + (f" (the weighted signals alone give {d['computed_score']})" if d["overrides"] else ""),
        "",
        "Categories",
    ]
    for name, score in d["categories"].items():
        shown = "no data" if score is None else f"{score:>3} {BAR * round(score / 10)}"
        lines.append(f"  {name:<14} {shown}")
    lines += ["", "Signals (points, share of the score, evidence)"]
    for s in (s for s in d["signals"] if s["score"] is not None):
        lines.append(
            f"  {s['signal']:<24} {s['score']:>3}  {100 * s['weight_share']:>5.1f}%  "
            f"{_evidence(s['evidence'])}"
        )
    left_out = [s["signal"] for s in d["signals"] if s["score"] is None]
    if left_out:
        # no data is not zero: their weight went to the signals above
        lines.append(f"  left out, no data: {', '.join(left_out)}")
    lines += ["", "Detectors"]
    if not d["detectors"]:
        lines.append("  none fired")
    for f in d["detectors"]:
        where = f" on {f['series']}" if f["series"] else ""
        lines.append(
            f"  {f['severity'].upper():<7} {f['detector']}{where}: {_evidence(f['evidence'])}"
        )
        lines.append(f"          -> {f['action']}")
    lines += ["", "Overrides"]
    if not d["overrides"]:
        lines.append("  none apply")
    for o in d["overrides"]:
        value = "" if o["value"] is None else f" {o['value']}"
        lines.append(
            f"  {o['override']}: {o['effect']}{value} (score before {o['score_before']}); "
            f"{_evidence(o['evidence'])}"
        )
    playbook = d.get("playbook") or {}
    lines += ["", f"Recommended action: {d['recommended_action']}"]
    if playbook:
        owner = f", owner {playbook.get('owner')}" if playbook.get("owner") else ""
        escalate = f", escalate to {playbook['escalate_to']}" if playbook.get("escalate_to") else ""
        lines.append(
            f"Playbook ({playbook['zone']}): {playbook.get('cadence', '')}{owner}{escalate}"
        )
        lines += [f"  - {action}" for action in playbook.get("actions", [])]
    changes = history[-last:]
    lines += ["", f"Last {len(changes)} outputs"]
    for change in changes:
        lines.append(f"  {change['as_of']}  #{change['seq']:<4} {_summary(change)}")
    return "\n".join(lines)


def _summary(o: Output) -> str:
    if o["kind"] == "score_changed":
        before = (
            "new" if o["previous_score"] is None else f"{o['previous_score']} {o['previous_zone']}"
        )
        return f"score {before} -> {o['score']} {o['zone']}"
    if o["kind"] == "alert":
        return f"ALERT {o['alert']} ({o['severity']}): {o['action']}"
    if o["kind"] == "override_applied":
        return f"override {o['override']} applied ({o['effect']} {o['value']})"
    return f"override {o['override']} cleared: {o['reason']}"
