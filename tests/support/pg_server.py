"""A throwaway real PostgreSQL server for tests: initdb + pg_ctl on a free port, stopped (and its data removed)
afterwards.

    with PgServer() as pg:
        pg.url  # postgresql://ltx:<password>@127.0.0.1:<port>/ltx

The server refuses to run as root, so under root the cluster belongs to the `postgres` user and lives in a
folder of its own under the system's temporary directory (pytest's folders are private to root). A missing
PostgreSQL is an error naming the setup script, never a skip.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .comfy_server import free_port

USER, DATABASE = "ltx", "ltx"
SYSTEM_USER = "postgres"
START_TIMEOUT = 60


def server_bin_dir() -> Path:
    """The folder of `initdb` / `pg_ctl`: on PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if not versions:
        raise RuntimeError("no PostgreSQL server (initdb) on this machine: run scripts/setup_env.sh, which "
                           "installs it through apt")
    return versions[-1].parent


class PgServer:
    """One PostgreSQL cluster with a password-protected user `ltx` owning database `ltx`."""

    def __init__(self, password: str = "ltx-test-password"):
        self.password = password
        self.bin = server_bin_dir()
        self.as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="ltxv097-pg-"))
        self.data = self.folder / "data"
        self.port: int | None = None

    @property
    def url(self) -> str:
        return self.url_with()

    def url_with(self, *, password: str | None = None, port: int | None = None,
                 database: str = DATABASE) -> str:
        return (f"postgresql://{USER}:{self.password if password is None else password}@127.0.0.1:"
                f"{self.port if port is None else port}/{database}")

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        if self.as_root:
            command = ("runuser", "-u", SYSTEM_USER, "--", *command)
        return subprocess.run(command, check=check, capture_output=True, text=True, cwd=self.folder,
                              timeout=START_TIMEOUT)

    def __enter__(self) -> PgServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def init(self) -> None:
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if self.as_root:
            account = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
                  f"--pwfile={password_file}", "-E", "UTF8", "--no-instructions")
        password_file.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:  # a test cluster: speed over durability
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")

    def start(self) -> None:
        """Start (or restart) the cluster on a new free port unless one was used before (a restart keeps it)."""
        self.port = self.port or free_port()
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder}"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                  "-t", str(START_TIMEOUT), "-o", options, "start")
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.url_with(database="postgres"), autocommit=True) as connection:
                    exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                                (DATABASE,)).fetchone()
                    if not exists:
                        connection.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def log_text(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""
