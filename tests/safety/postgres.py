"""A throwaway PostgreSQL cluster in a temp dir: unix socket only, run as an unprivileged user.

PostgreSQL refuses to run as root, and CI runs as root: then initdb and the server run through
``runuser -u USER --``, USER being ``$SAFETY_PG_USER``, else ``postgres`` (made by Debian's
package), else a system user ``fencelock-safety`` created for the purpose.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional

__all__ = ["Postgres", "find_bin_dir"]

DATABASE_USER = "fencelock"


class Postgres:
    """``start()`` runs initdb and pg_ctl start; ``stop()`` runs pg_ctl stop. Use as a context manager."""

    def __init__(self, base: Path) -> None:
        self.base = base / "postgres"
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "server.log"
        self.bin_dir = find_bin_dir()
        self.os_user = _unprivileged_user() if os.geteuid() == 0 else None
        self.started = False

    def __enter__(self) -> "Postgres":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def conninfo(self) -> str:
        return f"host={self.socket_dir} dbname=postgres user={DATABASE_USER}"

    def start(self) -> None:
        self.socket_dir.mkdir(parents=True)
        # The unprivileged user must reach its directories through ours.
        for path in (self.base.parent, self.base):
            path.chmod(0o755)
        if self.os_user is not None:
            shutil.chown(self.base, self.os_user, self.os_user)
            shutil.chown(self.socket_dir, self.os_user, self.os_user)
        self._run(self._bin("initdb"), "-D", str(self.data), "-U", DATABASE_USER, "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        # No TCP at all (listen_addresses empty): only the socket in our temp dir. PostgreSQL is
        # never killed in this test, so durability settings only cost time.
        options = f"-c listen_addresses='' -k {self.socket_dir} -c fsync=off -c synchronous_commit=off -c max_connections=60"
        self._run(self._bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.started = True

    def stop(self) -> None:
        if self.started:
            self.started = False
            self._run(self._bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", check=False)

    def pid(self) -> Optional[int]:
        pid_file = self.data / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _bin(self, name: str) -> str:
        return str(Path(self.bin_dir) / name)

    def _run(self, *command: str, check: bool = True) -> None:
        prefix: List[str] = ["runuser", "-u", self.os_user, "--"] if self.os_user is not None else []
        done = subprocess.run([*prefix, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.base)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{log}")


def find_bin_dir() -> str:
    """Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/VERSION/bin."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    if candidates:
        return str(Path(candidates[0]).parent)
    found = shutil.which("initdb")
    if found:
        return str(Path(found).parent)
    raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql); tests/safety/run.sh installs it")


def _unprivileged_user() -> str:
    wanted = os.environ.get("SAFETY_PG_USER")
    for name in ([wanted] if wanted else ["postgres", "fencelock-safety"]):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    name = wanted or "fencelock-safety"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    return name
