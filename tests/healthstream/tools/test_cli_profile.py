"""An invalid profile stops the worker at start, with a message naming the key and the reason."""

import subprocess
import sys


def test_worker_refuses_an_invalid_profile_naming_the_key(tmp_path) -> None:
    profile = tmp_path / "tuned.toml"
    profile.write_text(
        "[categories.usage]\nweight = 1\nsignals = { usage_trend = 1 }\n"
        "[overrides.champion_departed]\ncap = 140\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "healthstream.cli",
            "worker",
            "--profile",
            str(profile),
            "--bootstrap",
            "127.0.0.1:9",  # nothing listens: the profile must fail before any connection
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "overrides.champion_departed.cap: 140 is out of range" in done.stderr
    assert "Traceback" not in done.stderr


def test_packaged_profiles_are_chosen_by_name(tmp_path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"event_id":"1","account_id":"a","type":"login","ts":1767225600000,"user_id":"u"}\n'
    )
    outputs = {}
    for name in ("default", "five_factor"):
        done = subprocess.run(
            [sys.executable, "-m", "healthstream.cli", "replay", str(events), "--profile", name],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outputs[name] = done.stdout
    assert outputs["default"] and outputs["five_factor"]
    assert outputs["default"] != outputs["five_factor"]  # another model, another version
