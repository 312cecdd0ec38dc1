"""The hostile-file runner: every case of ``hostile_cases.CASES`` in its own forked child.

The runner forks one child per case from a clean, single-threaded process (``python -m
tests.support.hostile_runner run WORK``), so a segfault, a hang or a memory bomb ends that child
only: the parent records it as ``crash`` / ``hang`` / ``over_budget`` and goes on. Every child runs
under ``RLIMIT_AS`` (its start size + 2 GiB) and ``RLIMIT_CPU``; its peak RSS growth is read from
``/proc/self/status`` (``VmHWM`` - ``VmRSS`` at start).

Used by ``tests/reliability/test_hostile.py`` and ``tests/reliability/test_integrity.py`` (one test per
case) and ``benchmarks/reliability_report.py`` (``hostile_*`` and ``integrity_*`` counts). Two suites:
``hostile`` (issue 16, ``hostile_cases``) and ``integrity`` (issue 23, ``integrity_cases``).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import REPO
from tests.support.hostile_cases import CASES, RSS_BUDGET_MB, Case

HANG_S = 60.0  # a case still running after this is a hang


# ---------------------------------------------------------------------------------------------
# Runner


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(case: Case, work: Path, fd: int) -> None:
    """In the forked child: build the case, run its target, write one JSON result to ``fd``."""
    res: dict = {"outcome": "loaded", "message": ""}
    import faulthandler

    faulthandler.disable()  # a crash is recorded by the parent as its signal; no dump into the test output
    try:
        cdir = work / case.name
        cdir.mkdir(parents=True, exist_ok=True)
        target, args, named = case.build(cdir)
        res["file"] = named
        size = _status_kb("VmSize") * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_CPU, (int(HANG_S), int(HANG_S) + 5))
        module, fn = target.split(":")
        func = getattr(importlib.import_module(module), fn)
        try:  # reset the peak RSS, so the case's own construction does not count
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        rss0 = _status_kb("VmRSS")
        t0 = time.perf_counter()
        try:
            value = func(*args)
            res["message"] = " ".join(repr(value).split())[:200]
        except Exception as exc:  # classified below
            from schemas.errors import MocapCorpusError

            res["message"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            if isinstance(exc, MocapCorpusError):  # the project's typed errors (InputError, ConfigError, ...)
                res["outcome"] = "typed" if named in str(exc) else "typed_unnamed"
                res["memory_error"] = "MemoryError" in str(exc) or "more memory than" in str(exc)
            else:
                res["outcome"] = "untyped"
        res["seconds"] = time.perf_counter() - t0
        res["rss_mb"] = max(0, _status_kb("VmHWM") - rss0) / 1024
    except BaseException as exc:  # the case's own construction failed
        res.update(outcome="setup_error", message=f"{type(exc).__name__}: {exc}"[:300])
    os.write(fd, json.dumps(res).encode())
    os.close(fd)
    os._exit(0)


def payload_marker(work: Path, case: Case) -> Path:
    """Where a payload of ``case`` would leave its mark: inside the case's own folder, so an executed
    payload marks that case only, never the cases run after it."""
    return work / case.name / "payload.executed"


def run_case(case: Case, work: Path, hang_s: float = HANG_S) -> dict:
    """Fork, run one case, classify: typed / loaded / untyped / typed_unnamed / crash / hang (+ ok, over_budget)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            _child(case, work, w)
        finally:
            os._exit(3)
    os.close(w)
    chunks, deadline, status = [], time.monotonic() + hang_s, None
    while True:
        ready, _, _ = select.select([r], [], [], 0.2)
        if ready:
            data = os.read(r, 1 << 16)
            if data:
                chunks.append(data)
                continue
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            rest = os.read(r, 1 << 16) if select.select([r], [], [], 0)[0] else b""
            chunks.append(rest)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
    os.close(r)
    raw = b"".join(chunks)
    res = {"name": case.name, "category": case.category, "expect": case.expect}
    if status is None:
        res.update(outcome="hang", message=f"still running after {hang_s:.0f} s")
    elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        res.update(outcome="hang", message=f"used {HANG_S:.0f} s of CPU (RLIMIT_CPU)")
    elif os.WIFSIGNALED(status):
        res.update(outcome="crash", message=f"killed by signal {os.WTERMSIG(status)}")
    elif not raw:
        res.update(outcome="crash", message=f"exited {os.WEXITSTATUS(status)} without a result")
    else:
        res.update(json.loads(raw))
    res["payload_ran"] = payload_marker(work, case).exists()  # this case's own marker: one payload marks one case
    res["over_budget"] = bool(res.get("rss_mb", 0) > case.budget_mb or res.get("memory_error"))
    want = "typed" if case.expect == "typed" else "loaded"
    # the reason must say what was wrong: matched with the case's own folder (whose name says it) left out
    said = res.get("message", "").replace(str(work / case.name), "<case>")
    res["ok"] = (res["outcome"] == want and not res["over_budget"] and not res["payload_ran"] and case.match in said)
    return res


# The suites this runner runs: the module whose CASES it forks one child for each.
SUITES = {"hostile": "tests.support.hostile_cases", "integrity": "tests.support.integrity_cases"}


def suite_cases(suite: str = "hostile") -> tuple[Case, ...]:
    return importlib.import_module(SUITES[suite]).CASES


def run_all(work: Path, names=None, suite: str = "hostile") -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    return [run_case(c, work) for c in suite_cases(suite) if names is None or c.name in names]


def summary(results: list[dict]) -> dict:
    """The counts reported in reliability_report.py's JSON line."""
    heavy = {c.name for c in CASES if c.budget_mb > RSS_BUDGET_MB}
    light = [r for r in results if r["name"] not in heavy]
    return {
        "hostile_cases": len(results),
        "hostile_crashes": sum(r["outcome"] == "crash" for r in results),
        "hostile_hangs": sum(r["outcome"] == "hang" for r in results),
        "hostile_over_budget": sum(bool(r["over_budget"]) for r in results),
        "hostile_untyped": sum(r["outcome"] in ("untyped", "typed_unnamed", "setup_error") for r in results),
        "hostile_wrong": sum(not r["ok"] for r in results),
        "hostile_payloads": sum(bool(r["payload_ran"]) for r in results),
        # cases that first load real-size body models (dmpls_without_dmpl_model) are left out of the maxima
        "hostile_max_seconds": round(max((r.get("seconds", 0.0) for r in light), default=0.0), 3),
        "hostile_max_rss_mb": round(max((r.get("rss_mb", 0.0) for r in light), default=0.0), 1),
    }


def integrity_summary(results: list[dict]) -> dict:
    """The integrity counts of reliability_report.py's JSON line: cases and failures, in all and per class."""
    cats = {c.name: c.category for c in suite_cases("integrity")}
    by_class: dict[str, list[int]] = {}
    for r in results:
        n = by_class.setdefault(cats.get(r["name"], r.get("category", "?")), [0, 0])
        n[0] += 1
        n[1] += not r["ok"]
    return {
        "integrity_cases": len(results),
        "integrity_failures": sum(not r["ok"] for r in results),
        "integrity_by_class": {k: {"cases": v[0], "failures": v[1]} for k, v in by_class.items()},
        "integrity_max_seconds": round(max((r.get("seconds", 0.0) for r in results), default=0.0), 3),
        "integrity_max_rss_mb": round(max((r.get("rss_mb", 0.0) for r in results), default=0.0), 1),
    }


def run_suite(work: Path, names=None, timeout_s: float = 1800, suite: str = "hostile") -> list[dict]:
    """Run every case of ``suite`` from a fresh, single-threaded interpreter (fork-safe), return the
    per-case results."""
    out = Path(work) / f"{suite}_results.json"
    cmd = [sys.executable, "-m", "tests.support.hostile_runner", "run", str(work), "--out", str(out),
           "--suite", suite]
    if names:
        cmd += ["--only", ",".join(names)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"hostile runner failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="run the hostile-file cases, one forked child each")
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("work", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", default="")
    ap.add_argument("--suite", choices=sorted(SUITES), default="hostile")
    args = ap.parse_args(argv)
    # preload what the cases use, so children fork with it (and each case's timing is its own)
    import pipelines.amass  # noqa: F401
    import pipelines.body_model  # noqa: F401
    import pipelines.sequence  # noqa: F401
    import pipelines.h36m  # noqa: F401 - preloaded for the forked cases
    if args.suite == "integrity":
        import pipelines.rebuild  # noqa: F401
        import pipelines.writer  # noqa: F401
        import uplift.checkpoint  # noqa: F401
        import uplift.train  # noqa: F401
        import flows.inference  # noqa: F401

    results = run_all(args.work, set(args.only.split(",")) if args.only else None, args.suite)
    for r in results:
        print(f"{r['name']:42s} {r['outcome']:14s} ok={r['ok']!s:5s} {r.get('seconds', 0):6.3f}s "
              f"{r.get('rss_mb', 0):7.1f}MB  {r['message'][:110]}")
    print(json.dumps(summary(results) if args.suite == "hostile" else integrity_summary(results)))
    if args.out:
        args.out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
