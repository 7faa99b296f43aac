"""``python -m quality.run --quick`` end to end through the real scoring core."""

import json

import pytest

from quality.generator import LASTING_KINDS, Kind
from quality.run import main, parser

RATES = (
    "alerts_per_100_account_months",
    "red_onsets_per_100_account_months",
    "yellow_onsets_per_100_account_months",
    "exits_from_healthy_per_100_account_months",
    "flips_within_24h_per_100_account_months",
)
SHARES = (
    "flagged_at_change",
    "detected_within_21d",
    "noted_within_21d",
    "flagged_at_8_weeks",
    "flagged_at_16_weeks",
)


def share(value: object) -> bool:
    return isinstance(value, float | int) and 0 <= value <= 1


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("quality")
    assert main(["--quick", "--profiles", "default", "--jobs", "1", "--out", str(out)]) == 0
    assert (out / "report.html").read_text().count("<svg") == 3
    return json.loads((out / "results.json").read_text())


def test_the_results_describe_the_run(results: dict) -> None:
    assert results["seed"] == 7
    assert results["volumes"] == [15, 200]
    assert results["replicates"] == {"steady": 3, "changed": 2}
    assert results["days"] == results["generator"]["days"] > 150
    assert list(results["profiles"]) == ["default"]
    profile = results["profiles"]["default"]
    assert profile["outputs"] > 0
    assert profile["rejected"] == {} and profile["duplicates"] == 0


def test_steady_figures_are_rates_for_every_volume(results: dict) -> None:
    steady = results["profiles"]["default"]["steady"]
    assert set(steady["by_volume"]) == {"15", "200"}
    for figures in (steady["all"], *steady["by_volume"].values()):
        assert figures["account_months"] > 0
        for key in RATES:
            assert isinstance(figures[key], float | int) and figures[key] >= 0
        assert set(figures["flips_within_24h"]) == {"findings", "zones", "overrides"}
        assert share(figures["share_of_days_flagged"])
        assert 0 <= figures["median_score"] <= 100
    assert steady["all"]["accounts"] == 6


def test_every_change_kind_has_its_figures(results: dict) -> None:
    kinds = results["profiles"]["default"]["kinds"]
    assert set(kinds) == {str(k) for k in Kind if k is not Kind.STEADY}
    for name, cut in kinds.items():
        for figures in (cut["all"], *cut["by_volume"].values()):
            for key in SHARES:
                assert share(figures[key]), (name, key)
            delay = figures["median_delay_days"]
            assert delay is None or 0 <= delay <= 21
            if Kind(name) in LASTING_KINDS:
                assert 0 <= figures["median_score_16_weeks"] <= 100
        assert cut["all"]["accounts"] == 4
    assert share(kinds["silence"]["all"]["critical_within_14d"])
    assert share(kinds["dip_10d"]["all"]["red_or_alert"])
    assert share(kinds["dip_10d"]["all"]["yellow_finding"])


def test_the_known_rate_reference_is_beside_the_profile(results: dict) -> None:
    known = results["known_rate"]
    assert known["accounts"] == 40 and set(known["by_volume"]) == {"15", "200"}
    rows = results["profiles"]["default"]["against_known_rate"]
    assert set(rows) == {"15", "200"}
    for row in rows.values():
        assert row["profile_flag_onsets"] >= 0
        assert share(row["known_rate_detected_at_those_onsets"])


def test_the_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for option in (
        "--seed",
        "--steady",
        "--replicates",
        "--profiles",
        "--out",
        "--quick",
        "--reference-accounts",
    ):
        assert option in text


def test_an_unknown_profile_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--profiles", "nonesuch"])
    assert "unknown profile 'nonesuch'" in capsys.readouterr().err


def test_accounts_send_several_records_a_day(results: dict) -> None:
    assert results["records"] > results["accounts"] * results["days"]
