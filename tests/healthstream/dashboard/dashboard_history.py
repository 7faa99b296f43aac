"""What the dashboard's tests share: the hostile account id, the history they read, and
``healthstream serve`` in a child process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: an account id that is HTML, a path and a query at once: the page must show it as text
HOSTILE = '<script>document.title="owned"</script><b>&amp;</b> "q" \'s/../x%2F?y#z'
#: the account whose telemetry the hostile one copies
HOSTILE_FROM = "acct-00003"


@dataclass(frozen=True)
class History:
    """A score history on disk, and every output written to it, in order."""

    url: str
    path: Path
    outputs: list[dict[str, Any]]

    def newest(self) -> dict[str, dict[str, Any]]:
        """Each account's newest output (the highest seq)."""
        newest: dict[str, dict[str, Any]] = {}
        for out in self.outputs:
            if out["account_id"] not in newest or out["seq"] > newest[out["account_id"]]["seq"]:
                newest[out["account_id"]] = out
        return newest


def healthstream(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "healthstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


class ServeProcess:
    """``healthstream serve`` in a child process on a free port of 127.0.0.1."""

    def __init__(self, url: str, token: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "HEALTHSTREAM_UI_TOKEN"}
        if token is not None:
            env["HEALTHSTREAM_UI_TOKEN"] = token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "healthstream.cli", "serve", "--history", url, "--port", "0"]
            + ["--profile", "five_factor"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stderr is not None
        self.announced = self.proc.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", self.announced)
        if not found:
            self.proc.kill()
            raise AssertionError(f"healthstream serve did not start: {self.announced}")
        self.base = found.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()
