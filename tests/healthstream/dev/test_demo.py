"""``healthstream demo`` end to end, on a small scenario."""

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_streams_a_scenario_and_reports_accounts_by_zone() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "healthstream.cli",
            "demo",
            "--accounts",
            "30",
            "--days",
            "40",
            "--seconds",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    counts = {
        z: int(n)
        for z, n in re.findall(r"^  (critical|at_risk|healthy|onboarding)\s+(\d+)$", out, re.M)
    }
    assert sum(counts.values()) == 30
    changes = int(re.search(r"([\d,]+) score changes emitted", out).group(1).replace(",", ""))
    assert changes >= 30
    assert "Final zone by simulated behaviour" in out
