"""Start and stop a local Prefect server (SQLite, loopback) and the processes around it.

Every process we start carries ``MOCAP_CORPUS_PROC_TAG=<tag>`` in its environment. Prefect's runner
starts flow runs in their own session and Dask starts worker processes below those, so killing a
process group is not enough to leave no orphans: :func:`stop_tagged` finds every live process that
inherited the tag (wherever it was re-parented to) and ends it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

TAG_ENV = "MOCAP_CORPUS_PROC_TAG"
LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def new_tag() -> str:
    return f"mocap-{uuid.uuid4().hex[:12]}"


def prefect_env(
    home: Path,
    api_url: str,
    tag: str,
    *,
    host: str = LOOPBACK,
    port: int | None = None,
    ui: bool = True,
    poll_s: float | None = 1.0,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for the server, the serve process and CLI calls that talk to ``api_url``.

    ``home`` becomes PREFECT_HOME, so the SQLite database, profiles and persisted results (the
    result cache) live there and never in the user's ~/.prefect.
    """
    env = dict(os.environ if base is None else base)
    # A profile or stray variable from the caller must not point us at another server.
    for k in [k for k in env if k.startswith("PREFECT_")]:
        del env[k]
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_API_HOST": host,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "PREFECT_LOCAL_STORAGE_PATH": str(Path(home) / "storage"),
            "PREFECT_CLI_PROMPT": "false",
            # stream run logs to `prefect deployment run --watch` (a failed run's one-line reason)
            "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
            "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
            TAG_ENV: tag,
        }
    )
    if port is not None:
        env["PREFECT_SERVER_API_PORT"] = str(port)
    if poll_s is not None:
        env["PREFECT_RUNNER_POLL_FREQUENCY"] = str(poll_s)
    return env


def prefect_exe() -> str:
    """The ``prefect`` console script of the interpreter that runs us (the project venv)."""
    exe = Path(sys.executable).with_name("prefect")
    return str(exe) if exe.exists() else "prefect"


def wait_healthy(api_url: str, timeout_s: float = 90.0, proc: subprocess.Popen | None = None) -> float:
    """Poll ``{api_url}/health`` until it answers 200; returns the seconds waited.

    Raises RuntimeError if ``proc`` exits first or the timeout passes.
    """
    t0 = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"Prefect server exited with code {proc.returncode} before it was healthy")
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"Prefect server at {api_url} not healthy after {timeout_s:.0f} s")
        time.sleep(0.25)


@dataclass
class LocalStack:
    """A local Prefect server plus (optionally) the process serving our deployments."""

    home: Path
    port: int
    tag: str
    host: str = LOOPBACK
    ui: bool = True
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _logs: list = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self, **kw) -> dict[str, str]:
        return prefect_env(self.home, self.api_url, self.tag, host=self.host, port=self.port, ui=self.ui, **kw)

    def _spawn(self, name: str, cmd: list[str], cwd: Path | None = None) -> subprocess.Popen:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
            self._logs.append(out)
        else:
            out = subprocess.DEVNULL
        proc = subprocess.Popen(
            cmd,
            env=self.env(),
            cwd=str(cwd) if cwd else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: Ctrl-C in our terminal is ours to forward
        )
        self.procs[name] = proc
        return proc

    def start_server(self, timeout_s: float = 120.0) -> float:
        """Start ``prefect server start`` and wait for health; returns the seconds it took."""
        self.home.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        proc = self._spawn(
            "server",
            [prefect_exe(), "server", "start", "--host", self.host, "--port", str(self.port)],
        )
        wait_healthy(self.api_url, timeout_s, proc)
        dt = time.monotonic() - t0
        log.info("Prefect server healthy at %s after %.1f s (PREFECT_HOME=%s)", self.api_url, dt, self.home)
        return dt

    def start_serve(self, cwd: Path | None = None, timeout_s: float = 120.0) -> float:
        """Start ``python -m flows serve`` and wait until every deployment is registered."""
        from flows.serve import DEPLOYMENT_NAMES

        t0 = time.monotonic()
        proc = self._spawn("serve", [sys.executable, "-m", "flows", "serve"], cwd=cwd)
        wait_deployments(self.api_url, DEPLOYMENT_NAMES, timeout_s, proc)
        dt = time.monotonic() - t0
        log.info("Serving %d deployments after %.1f s", len(DEPLOYMENT_NAMES), dt)
        return dt

    def stop(self, timeout_s: float = 15.0) -> list[int]:
        """Stop everything we started (serve first, then the server); returns pids force-killed."""
        for name in ("serve", "server"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                _signal_group(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        killed = stop_tagged(self.tag, timeout_s=5.0)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for f in self._logs:
            f.close()
        self._logs.clear()
        return killed

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        pass


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Live processes (other than us) whose environment carries ``TAG_ENV=tag``."""
    me = os.getpid()
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            if p.environ().get(TAG_ENV) == tag and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def stop_tagged(tag: str, timeout_s: float = 5.0) -> list[int]:
    """SIGTERM every process tagged ``tag``, SIGKILL what is left after ``timeout_s``.

    Returns the pids that needed SIGKILL (should be empty after a clean shutdown).
    """
    procs = tagged_processes(tag)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout_s)
    return [p.pid for p in alive]


def wait_deployments(
    api_url: str, names: list[str], timeout_s: float = 120.0, proc: subprocess.Popen | None = None
) -> None:
    """Wait until every ``flow/deployment`` in ``names`` exists on the server at ``api_url``."""
    import json

    t0 = time.monotonic()
    want = set(names)
    while True:
        have: set[str] = set()
        try:
            req = urllib.request.Request(
                f"{api_url}/deployments/filter",
                data=json.dumps({"limit": 200}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                deps = json.load(r)
            flow_ids = {d["flow_id"] for d in deps}
            req = urllib.request.Request(
                f"{api_url}/flows/filter",
                data=json.dumps({"flows": {"id": {"any_": sorted(flow_ids)}}}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                flow_names = {f["id"]: f["name"] for f in json.load(r)}
            have = {f"{flow_names.get(d['flow_id'], '?')}/{d['name']}" for d in deps}
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
            pass
        if want <= have:
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"serve process exited with code {proc.returncode}; registered: {sorted(have)}")
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"deployments missing after {timeout_s:.0f} s: {sorted(want - have)}")
        time.sleep(0.5)
