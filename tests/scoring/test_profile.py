"""Profile loading and validation."""

import pytest

from scoring.profile import (
    MAX_SIGNALS,
    PROFILES,
    ProfileError,
    load_profile,
    profile_from_mapping,
)


def base() -> dict:
    return {
        "zones": {"healthy": 75, "at_risk": 40},
        "categories": {"usage": {"weight": 1, "signals": {"login_frequency": 1}}},
    }


def test_default_profile_has_at_most_ten_signals_and_a_stable_version() -> None:
    p = load_profile()
    assert 0 < len(p.signal_names) <= MAX_SIGNALS
    assert p.version == load_profile().version
    assert (p.healthy_from, p.at_risk_from) == (75, 40)
    assert [c.weight for c in p.categories] == [35, 25, 20, 20]


def test_version_changes_with_weights() -> None:
    a = profile_from_mapping(base())
    data = base()
    data["categories"]["usage"]["signals"]["usage_trend"] = 2
    assert profile_from_mapping(data).version != a.version


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["categories"]["usage"]["signals"].update(bogus=1),
            "categories.usage.signals.bogus: unknown signal",
        ),
        (lambda d: d["zones"].update(healthy="high"), "zones.healthy: expected a number"),
        (lambda d: d["zones"].update(at_risk=90), "zones.at_risk: 90 is above zones.healthy"),
        (
            lambda d: d.update(signals={"login_frequency": {"bandz": []}}),
            "signals.login_frequency.bandz: unknown key",
        ),
        (lambda d: d.update(signals={"usage_trend": {"series": "x"}}), "tuned but not used"),
        (
            lambda d: d["categories"]["usage"].update(weight=-1),
            "categories.usage.weight: -1 is out of range",
        ),
        (lambda d: d.update(colour="red"), "colour: unknown key"),
    ],
)
def test_bad_profiles_name_the_key(mutate, message: str) -> None:
    data = base()
    mutate(data)
    with pytest.raises(ProfileError, match=message.replace(".", r"\.")):
        profile_from_mapping(data)


def test_bad_series_is_named(tmp_path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        "[categories.usage]\nweight = 1\nsignals = { usage_trend = 1 }\n"
        '[signals.usage_trend]\nseries = "clicks"\n'
    )
    with pytest.raises(
        ProfileError, match=r"signals\.usage_trend\.series: unknown series 'clicks'"
    ):
        load_profile(f)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d.update(segments={"ent": {"match": {"tier": "gold"}}}),
            "segments.ent.match.tier: unknown key",
        ),
        (
            lambda d: d.update(segments={"ent": {"zones": {"healthy": 101}}}),
            "segments.ent: zones.healthy: 101 is out of range",
        ),
        (
            lambda d: d.update(onboarding={"mode": "skip"}),
            "onboarding.mode: 'skip'",
        ),
        (
            lambda d: d.update(onboarding={"days": 30, "zones": {"healthy": 50}}),
            'onboarding.zones: weights apply only with mode = "profile"',
        ),
        (lambda d: d.update(login_gating={"factor": 2}), "login_gating.factor: 2 is out of range"),
        (
            lambda d: d.update(detectors={"regime_change": {"severity": "purple"}}),
            "detectors.regime_change.severity: 'purple' is not a severity",
        ),
        (
            lambda d: d.update(detectors={"series": ["clicks"]}),
            "detectors.series: unknown series 'clicks'",
        ),
        (
            lambda d: d.update(overrides={"zero_usage": {"score": 120}}),
            "overrides.zero_usage.score: 120 is out of range",
        ),
        (
            lambda d: d.update(overrides={"champion_left": {}}),
            "overrides.champion_left: unknown key",
        ),
        (
            lambda d: d.update(alerts={"on_detectors": ["gremlins"]}),
            "alerts.on_detectors: unknown detector 'gremlins'",
        ),
        (
            lambda d: d.update(playbooks={"critical": {"actions": []}}),
            "playbooks.critical.actions: expected a non-empty list",
        ),
        (
            lambda d: d.update(signals={"api_trend": {"kind": "warp_drive"}}),
            "signals.api_trend.kind: unknown signal kind 'warp_drive'",
        ),
    ],
)
def test_bad_model_sections_name_the_key(mutate, message: str) -> None:
    data = base()
    if "api_trend" in str(mutate.__code__.co_consts):
        data["categories"]["usage"]["signals"]["api_trend"] = 1
    mutate(data)
    with pytest.raises(ProfileError, match=message.replace(".", r"\.").replace("(", r"\(")):
        profile_from_mapping(data)


@pytest.mark.parametrize("name", PROFILES)
def test_every_packaged_profile_loads_within_ten_signals(name: str) -> None:
    p = load_profile(name)
    assert p.name == name
    assert 0 < len(p.signal_names) <= MAX_SIGNALS
    for segment in p.segments:
        assert len(segment.weighting.signal_names) <= MAX_SIGNALS


def test_the_playbooks_models_are_shipped_with_their_weights_and_zones() -> None:
    four_layer, five_factor = load_profile("four_layer"), load_profile("five_factor")
    assert [c.weight for c in four_layer.categories] == [40, 25, 20, 15]
    assert (four_layer.healthy_from, four_layer.at_risk_from) == (70, 40)
    assert [c.weight for c in five_factor.categories] == [25, 20, 20, 20, 15]
    assert (five_factor.healthy_from, five_factor.at_risk_from) == (80, 60)
    expected = {
        s.name: s.weighting.categories[0].signals[0].params["expected_calls_30d"]
        for s in five_factor.segments
    }
    assert expected == {"enterprise": 1000, "smb": 500, "startup": 200}


def test_a_signal_kind_reuses_a_scorer_under_its_own_name() -> None:
    data = base()
    data["categories"]["usage"]["signals"]["integration_trend"] = 1
    data["signals"] = {"integration_trend": {"kind": "usage_trend", "series": "api_calls"}}
    p = profile_from_mapping(data)
    signal = p.categories[0].signals[1]
    assert (signal.name, signal.kind, signal.params["series"]) == (
        "integration_trend",
        "usage_trend",
        "api_calls",
    )


def test_the_version_covers_the_model_sections() -> None:
    a = profile_from_mapping(base())
    data = base()
    data["overrides"] = {"champion_departed": {"cap": 35}}
    assert profile_from_mapping(data).version != a.version
