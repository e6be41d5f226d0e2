"""A throwaway PostgreSQL server for the tests that run Langflow as fleets do (several workers, one database).

Langflow's own SQLite database locks up under concurrent runs from several workers ("database is locked"),
with or without the plugin, so the multi-worker test runs Langflow on PostgreSQL. This starts Debian's
``postgresql`` binaries (``scripts/ensure_postgres.sh`` installs the package when missing) on a free port, in
a temporary folder, with trust authentication on loopback only. As root it runs the server as the
``postgres`` user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from server_support import REPO, free_port, run_checked

ENSURE_POSTGRES_SH = REPO / "scripts" / "ensure_postgres.sh"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is missing: scripts/ensure_postgres.sh installs Debian's package")
    return Path(found[-1]).parent


class PostgresServer:
    """``postgres`` on 127.0.0.1:<free port> with a database ``langflow``; :attr:`url` for Langflow."""

    def __init__(self) -> None:
        run_checked([str(ENSURE_POSTGRES_SH)], timeout=900)
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="langflow-cms-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(["initdb", "-D", str(self.data), "-A", "trust", "-U", "langflow", "--no-sync"], 120)
        self.log = self.root / "postgres.log"
        self.process = subprocess.Popen(
            self._command(
                "postgres",
                "-D", str(self.data),
                "-p", str(self.port),
                "-k", str(self.root),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=300",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
            ),
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )  # fmt: skip
        self._wait_ready()
        self._run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "langflow", "langflow"], 60)
        self.url = f"postgresql://langflow@127.0.0.1:{self.port}/langflow"

    def _command(self, name: str, *args: str) -> list[str]:
        command = [str(self.bin / name), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def _run(self, args: list[str], timeout: float) -> None:
        run_checked(self._command(args[0], *args[1:]), timeout=timeout)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log.read_text()}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"postgres did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: a "smart" shutdown; clients are gone by now
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
