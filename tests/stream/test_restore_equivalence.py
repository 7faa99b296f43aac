"""A state restored from its snapshot scores exactly as the live state would.

Caches (signal points, the account's card, detector findings) are derived data: rebuilding
them from a snapshot at any moment, as a restarted worker does, must not change a single
output. The live book and one whose states go through a snapshot round trip every few
hundred records must emit the same outputs.
"""

import random

import orjson
import pytest

from healthstream.dev.synthetic import Scenario, generate
from scoring.book import AccountBook
from scoring.engine import DuplicateEvent, HealthEngine, ScoringConfig
from scoring.profile import PROFILES, load_profile
from telemetry.codec import event_from_mapping
from windows.snapshot import decode_state, encode_state
from windows.telemetry import EventType


def _run(
    records: list[dict], profile: str, restore_every: int | None, seed: int = 0
) -> list[bytes]:
    book = AccountBook(HealthEngine(ScoringConfig(load_profile(profile), 5)))
    rng = random.Random(seed)
    outputs: list[bytes] = []
    for n, record in enumerate(records):
        event = event_from_mapping(record)
        if event.type is EventType.TICK:
            produced, _ = book.tick(event.ts_ms, list(book.states))
            outs = [o for _, o in produced]
        else:
            try:
                outs = book.apply(event)
            except DuplicateEvent:
                outs = []
        outputs += [orjson.dumps(o, option=orjson.OPT_SORT_KEYS) for o in outs]
        if restore_every and n % restore_every == rng.randrange(restore_every):
            for account in list(book.states):
                book.states[account] = decode_state(encode_state(book.state(account)))
    return outputs


@pytest.mark.parametrize("profile", PROFILES)
def test_outputs_do_not_depend_on_when_states_were_restored(profile: str) -> None:
    records = list(generate(Scenario(accounts=40, days=70, seed=5)))
    live = _run(records, profile, None)
    restored = _run(records, profile, 150, seed=1)
    by_account: dict[str, list[list[bytes]]] = {}
    for run, outputs in enumerate((live, restored)):
        for raw in outputs:
            account = orjson.loads(raw)["account_id"]
            by_account.setdefault(account, [[], []])[run].append(raw)
    for account, (a, b) in sorted(by_account.items()):
        first = next(
            (i for i, pair in enumerate(zip(a, b, strict=False)) if pair[0] != pair[1]), None
        )
        assert first is None and len(a) == len(b), (
            f"{account}: output {first} of {len(a)}/{len(b)} differs:\n"
            f"{a[first] if first is not None else a[len(b) :]}\n"
            f"{b[first] if first is not None else b[len(a) :]}"
        )
