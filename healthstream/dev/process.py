"""Run a worker as a child process, as the demo, the tests and the benchmark do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from stream.settings import ENVIRONMENT, Settings


class WorkerProcess:
    """``healthstream worker`` in a child process, its output in a log file."""

    def __init__(
        self,
        settings: Settings,
        workdir: Path,
        loglevel: str = "info",
        config_file: Path | None = None,
    ) -> None:
        """``config_file`` carries what the command line and environment cannot: the
        ``inputs`` of source topics, for one."""
        self.settings = settings
        self.config_file = config_file
        self.workdir = workdir
        self.loglevel = loglevel
        self.log_path = workdir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        s = self.settings
        cmd = [
            sys.executable,
            "-m",
            "healthstream.cli",
            "worker",
            "--bootstrap",
            s.bootstrap_servers,
            "--app-id",
            s.app_id,
            "--input-topic",
            s.input_topic,
            "--output-topic",
            s.output_topic,
            "--partitions",
            str(s.partitions),
            "--min-step",
            str(s.min_step),
            "--data-dir",
            str(self.workdir / "data"),
            "--loglevel",
            self.loglevel,
            "--store",
            s.store,
            "--max-cached-accounts",
            str(s.max_cached_accounts),
            "--max-live-accounts",
            str(s.max_live_accounts),
        ]
        if s.profile_path:
            cmd += ["--profile", s.profile_path]
        if self.config_file is not None:
            cmd += ["--config", str(self.config_file)]
        if s.web_enabled:
            cmd += ["--web", "--web-port", str(s.web_port), "--web-host", s.web_host or "127.0.0.1"]
        return cmd

    def start(self) -> WorkerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        defaults = Settings()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # every setting the environment can carry and these settings change
            **{
                var: str(getattr(self.settings, name))
                for var, name in ENVIRONMENT.items()
                if getattr(self.settings, name) != getattr(defaults, name)
            },
        }
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Send ``sig`` and wait; a worker that does not stop in time is killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    def wait_for_log(self, marker: str, timeout: float) -> str:
        """The first line of the worker's log holding ``marker``, waited for; RuntimeError,
        with the log's tail, when the worker exits or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            line = next((line for line in text.splitlines() if marker in line), None)
            if line is not None:
                return line
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"worker never logged {marker!r}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
