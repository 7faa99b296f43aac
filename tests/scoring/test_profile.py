"""Profile loading and validation."""

import pytest

from scoring.profile import MAX_SIGNALS, ProfileError, load_profile, profile_from_mapping


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
