"""The two registries under test, each started on a free loopback port with a temp data dir,
plus process-tree memory sampling (`/proc/<pid>/status` VmRSS and `smaps_rollup` Pss)."""

from __future__ import annotations

import base64
import configparser
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
_PR_SET_PDEATHSIG = 1
try:  # resolved here, so the forked child only makes the call
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark dies, even by SIGKILL."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    """A registry process on 127.0.0.1:<port>; subclasses say how to start it."""

    name = "registry"

    def __init__(self, workdir: Path, start_timeout: float) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"
        self.auth: tuple[str, str] | None = None
        # Extra environment for the process (the scale-out backends' settings).
        self.env: dict[str, str] = {}

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth_header(self) -> dict[str, str]:
        if self.auth is None:
            return {}
        token = base64.b64encode(":".join(self.auth).encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration before the process starts."""

    def after_start(self) -> None:
        """Read anything the process created (credentials) once it answers."""

    def start(self) -> Registry:
        self.prepare()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            # Several consecutive answers, so every worker sharing the port is up.
            if all(self._answers() for _ in range(8)):
                self.after_start()
                if self._v2_status() == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            return self._v2_status() in (200, 401)
        except OSError:
            return False

    def _v2_status(self) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/v2/", headers=self.auth_header)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Cargobay(Registry):
    """`cargobay serve` on its embedded defaults: all workers, SQLite, filesystem, auth on."""

    name = "cargobay"

    def __init__(self, workdir: Path, start_timeout: float) -> None:
        super().__init__(workdir, start_timeout)
        self.data_dir = workdir / "cargobay-data"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cargobay",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]

    def after_start(self) -> None:
        if self.auth is None:
            parser = configparser.ConfigParser()
            parser.read(self.data_dir / "admin-credentials")
            section = parser["default"]
            self.auth = (section["aws_access_key_id"], section["aws_secret_access_key"])


class Distribution(Registry):
    """Debian's CNCF Distribution 2.8 with the packaged configuration, minus its htpasswd auth,
    storing in a temp dir and listening on loopback only."""

    name = "distribution"
    # Replaces the filesystem driver's section when set (the scale-out backends' S3).
    storage_section = ""

    def prepare(self) -> None:
        root = self.workdir / "distribution-data"
        root.mkdir(parents=True, exist_ok=True)
        driver = self.storage_section or f"  filesystem:\n    rootdirectory: {root}\n"
        config = f"""\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
{driver}  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
  headers:
    X-Content-Type-Options: [nosniff]
"""
        (self.workdir / "config.yml").write_text(config)

    def command(self) -> list[str]:
        return [DISTRIBUTION_BINARY, "serve", str(self.workdir / "config.yml")]

    def start(self) -> Registry:
        # Its AWS SDK refuses to start with a custom CA bundle set for a plain-HTTP endpoint.
        if self.storage_section:
            os.environ.pop("AWS_CA_BUNDLE", None)
        return super().start()


def distribution_available() -> bool:
    return shutil.which(DISTRIBUTION_BINARY) is not None


# -- memory ------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: fields follow the last ')'.
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, ()))
    return tree


def _kib_field(path: str, name: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> tuple[int, int]:
    """(sum of VmRSS, sum of Pss) of the process tree, in bytes."""
    rss = pss = 0
    for pid in process_tree(root):
        rss += _kib_field(f"/proc/{pid}/status", "VmRSS:")
        pss += _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")
    return rss * 1024, pss * 1024


class MemorySampler:
    """Samples each registry's process tree in a thread and keeps the peaks."""

    def __init__(self, registries: list[Registry], interval: float) -> None:
        self.registries = registries
        self.interval = interval
        self.peak_rss = {r.name: 0 for r in registries}
        self.peak_pss = {r.name: 0 for r in registries}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        for registry in self.registries:
            proc = registry.proc  # replaced if the registry had to be restarted
            if proc is None:
                continue
            rss, pss = tree_memory(proc.pid)
            name = registry.name
            self.peak_rss[name] = max(self.peak_rss[name], rss)
            self.peak_pss[name] = max(self.peak_pss[name], pss)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
