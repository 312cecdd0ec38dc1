"""``make bench``: run every benchmark once, write ``benchmarks/RESULTS.md``, refresh the README's figures.

    python -m benchmarks.run_all [--only regress,build] [--quick] [--no-readme]

Each script runs in its own process (as a module of the installed ``benchmarks`` package) with the
arguments listed in ``BENCHMARKS`` (sized so that the whole run stays under ~15 minutes on 2 cores)
and ends with one JSON line; this script turns those lines into one table (measure, ours, baseline,
ratio, script and arguments, machine) and keeps the raw JSON in ``benchmarks/results.json``. A
benchmark that fails or runs out of time gets a row saying so. ``--only`` re-measures some and keeps
the other rows from the previous results.json. The README's figures section is then rewritten from
RESULTS.md by ``benchmarks/readme_figures.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "benchmarks" / "RESULTS.md"
RESULTS_JSON = REPO / "benchmarks" / "results.json"
BODY_MODEL = ("synthetic SMPL+H (and SMPL-X) stand-ins, as dense as the real models (up to 4 bones a vertex, dense "
              "pose correctives)")

# name -> (script, args, --quick args, timeout in s)
BENCHMARKS = {
    "regress": ("benchmarks/bench_regress.py", ["--frames", "8000"], ["--frames", "2000"], 600),
    "build": ("benchmarks/bench_build.py", ["--frames", "1000000", "--memory-frames", "300000,3000000",
                                            "--noop-files", "10000"],
              ["--frames", "40000", "--reference-frames", "1000", "--memory-frames", "20000,40000",
               "--noop-files", "50"], 3600),
    "loader": ("benchmarks/bench_loader.py", ["--sizes", "1000000,10000000"], ["--sizes", "200000,400000",
               "--batches", "100", "--rss-batches", "100"], 420),
    "model": ("benchmarks/bench_model.py", ["--rounds", "4"], ["--rounds", "1", "--batch", "8"], 300),
    "pretrain": ("benchmarks/pretrain_gain.py", ["--steps", "300", "--pretrain-steps", "600", "--seeds", "3"],
                 ["--quick"], 7200),
    "reliability": ("benchmarks/reliability_report.py", ["--fuzz-cases", "200", "--kill-random", "12"],
                    ["--fuzz-cases", "20", "--kill-random", "1"], 1500),
    "window_reads": ("benchmarks/corpus_window_reads.py", ["--frames", "1000000", "--windows", "1000"],
                     ["--frames", "100000", "--windows", "200"], 300),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores {cpu}, load {load:.1f}"


def module_of(script: str) -> str:
    """``benchmarks/bench_x.py`` -> ``benchmarks.bench_x``."""
    return script.removesuffix(".py").replace("/", ".")


def run_one(name: str, quick: bool) -> dict:
    script, args, quick_args, timeout = BENCHMARKS[name]
    args = quick_args if quick else args
    entry = {"script": script, "args": args, "machine": machine(), "quick": quick,
             "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    t0 = time.perf_counter()
    print(f"== {script} {' '.join(args)}", flush=True)
    # its own process group, so that a timeout also ends its Dask workers and helpers
    proc = subprocess.Popen([sys.executable, "-m", module_of(script), *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
            entry["error"] = f"exit {proc.returncode}: {tail[0][:200]}"
        else:
            entry["result"] = json.loads(lines[-1])
    except subprocess.TimeoutExpired:
        entry["error"] = f"timed out after {timeout} s"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"   {entry.get('error') or json.dumps(entry['result'])[:300]} ({entry['seconds']} s)", flush=True)
    return entry


def run_demo() -> dict:
    """Wall time of the demo pipeline (server, builds, training) in a fresh workspace, venv installed."""
    entry = {"script": "flows/demo.py", "args": ["(fresh temporary workspace)"], "machine": machine(),
             "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="bench_demo_") as ws:
        t0 = time.perf_counter()
        code = f"import sys; from pathlib import Path; from flows.demo import main; sys.exit(main(Path({ws!r})))"
        # its own process group: on a timeout the demo gets SIGTERM and stops its server and workers
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=600)
            wall = time.perf_counter() - t0
            if code == 0:
                entry["result"] = {"wall_s": round(wall, 1)}
            else:
                entry["error"] = f"exit {code}"
        except subprocess.TimeoutExpired:
            entry["error"] = "timed out after 600 s"
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"== demo: {entry.get('error') or entry['result']}", flush=True)
    return entry


def _n(x, digits=0) -> str:
    if isinstance(x, float) and abs(x) < 100:
        digits = max(digits, 1)  # small rates keep a decimal
    return f"{x:,.{digits}f}" if isinstance(x, (int, float)) else str(x)


def rows_for(name: str, e: dict) -> list[tuple[str, str, str, str]]:
    """(measure, ours, baseline, ratio) rows of one benchmark's JSON line."""
    r = e.get("result")
    if r is None:
        return [(name, "not measured", "", e.get("error", ""))]
    if name == "regress":
        return [(f"joint regression (frames/s, {_n(r['frames'])} frames)", _n(r["ours_fps"]),
                 f"{_n(r['reference_fps'])} (smplx SMPL+H forward f32 + regressor, best batch {r['reference_batch']})",
                 f"{r['ratio']:.1f}x, max error {r['max_abs_err_m']:.1e} m"),
                ("body model density (bones per vertex, non-zero pose correctives)",
                 f"{r['bones_per_vertex_mean']:.2f}, {r['posedirs_nonzero_fraction']:.0%}", "", "")] + (
            [(f"joint regression, SMPL-X through the deformation transfer (frames/s, {_n(x['frames'])} frames)",
              _n(x["ours_fps"]), f"{_n(x['reference_fps'])} (smplx SMPL-X forward f32 + transfer + regressor, best "
              f"batch {x['reference_batch']})", f"{x['ratio']:.1f}x, max error {x['max_abs_err_m']:.1e} m"),
             ("SMPL-X stand-in density (bones per vertex, non-zero pose correctives / shape + expression)",
              f"{x['bones_per_vertex_mean']:.2f}, {x['posedirs_nonzero_fraction']:.0%} / "
              f"{x['shapedirs_nonzero_fraction']:.0%}", "", "")] if (x := r.get("smplx")) else [])
    if name == "build":
        what = (f"whole AMASS build (source frames/s, {_n(r['source_frames'])} frames, 4 H36M views, "
                f"{r.get('workers', 2)} Dask workers)")
        rows = [(what, _n(r["source_fps"]), f"{_n(r['reference_fps'])} (official: full mesh on every source frame, "
                 "warmed up)", f"{r['ratio']:.1f}x"),
                (what + ", like for like", _n(r["source_fps"]),
                 f"{_n(r['reference_fps_like_for_like'])} (full mesh on the {r['needed_fraction']:.1%} of source "
                 "frames the resampling to 50 Hz needs, whole corpus)", f"{r['ratio_like_for_like']:.1f}x")]
        if "workers_1_fps" in r:
            p = r["speedup_projected"]
            rows.append(("build scaling: source frames/s with 1 / 2 workers; serial share (driver busy, 1 worker)",
                         f"{_n(r['workers_1_fps'])} / {_n(r['workers_2_fps'])}; {r['serial_share']:.1%}", "",
                         f"{r['speedup_measured_2']:.2f}x measured at 2; Amdahl {p['8']}x / {p['32']}x / {p['128']}x "
                         "at 8 / 32 / 128 workers"))
            ph = r["phases"]
            total = sum(ph[k] for k in ("read_s", "regress_s", "place_project_s", "write_s"))
            rows.append(("build worker time: read+hash / regress / in-view search+projection / check+write",
                         " / ".join(f"{ph[k] / total:.0%}" for k in ("read_s", "regress_s", "place_project_s", "write_s")),
                         "", f"{_n(ph['source_frames'] / total)} source frames/s in one process"))
        for m in r.get("memory") or []:
            rows.append((f"build peak RSS, {_n(m['source_frames'])} source frames: driver / largest worker",
                         f"{_n(m['driver_mb'])} MB / {_n(m['worker_mb'])} MB", "", ""))
        if r.get("noop"):
            n = r["noop"]
            rows.append((f"no-op rebuild of {_n(n['files'])} source files (CLI) vs `mocap-corpus versions`",
                         f"{n['noop_rebuild_s']:.2f} s", f"{n['versions_s']:.2f} s", f"{n['noop_ratio']:.2f}x the time"))
        rows.append(("build: no-op rebuild / peak RSS / joints out of view",
                     f"{r['noop_rebuild_s']:.2f} s / {_n(r['peak_rss_mb'])} MB / {r['out_of_view_fraction']:.2%}", "", ""))
        return rows
    if name == "loader":
        rows = [("loader (windows/s, N=351, batch 512, default on 2 cores: gathers on both, loads in line)",
                 _n(r["ours_wps"]), f"{_n(r['baseline_wps'])} (official-style in-memory generator, one thread)",
                 f"{r['ratio']:.1f}x")]
        if "ours_1thread_prefetch_wps" in r:
            rows.append(("loader, one gather thread + a group prefetch thread (windows/s)",
                         _n(r["ours_1thread_prefetch_wps"]), f"{_n(r['baseline_wps'])} (same generator)",
                         f"{r['ratio_1thread_prefetch']:.1f}x"))
        return rows + [
            ("loader through 2 DataLoader workers (windows/s)", _n(r["ours_2workers_wps"]),
             f"{_n(r['baseline_wps'])} (same generator)", f"{r['ratio_2cores']:.1f}x"),
            ("loader with per-window cameras (28 H36M cameras, projected on the fly)", _n(r["ours_pw_wps"]),
             f"{_n(r['baseline_pw_wps'])} (official-style per-window numpy projection)", f"{r['ratio_pw']:.1f}x"),
            ("loader mixing: distinct sources / consecutive-batch overlap, vs a global shuffle",
             f"{r['distinct_sources_ratio']:.2f}x / {r['overlap_ratio']:.2f}x", "1.00x / 1.00x", ""),
            (f"loader peak RSS ({' / '.join(_n(s) for s in r['sizes'])} frames)",
             f"{_n(r['rss_mb_1m'])} MB / {_n(r['rss_mb_10m'])} MB", "", "")]
    if name == "model":
        base = r["pps_cpu_351"] / r["keyframe_speedup_351"]
        return [("model parameters, N=351 / N=81", f"{r['params_351'] / 1e6:.2f} M / {r['params_81'] / 1e6:.2f} M",
                 "paper 10.39 M / 10.36 M", ""),
                ("model FLOPs a window, N=351 / N=81", f"{r['flops_351'] / 1e6:.0f} M / {r['flops_81'] / 1e6:.0f} M",
                 "paper 966 M / 543 M", ""),
                ("model CPU poses/s (N=351, spatial pass on key frames only)", _n(r["pps_cpu_351"]),
                 f"{_n(base)} (spatial pass on all frames, as the official code)", f"{r['keyframe_speedup_351']:.2f}x")]
    if name == "pretrain":
        seeds = r.get("seeds", 1)
        pm = lambda m, sd: f"{m:.1f} ± {sd:.1f}"  # noqa: E731 mean ± std over seeds
        rows = [(f"pre-training proxy: H36M/CPN-like test MPJPE at s_in=20 (mm, mean ± std of {seeds} seeds, "
                 f"{r['steps']} steps on H36M)",
                 f"{pm(r['mpjpe_pretrained_mm'], r.get('pretrained_std_mm', 0))} (pre-trained {r['pretrain_steps']} "
                 f"steps on AMASS, recipe {r.get('default_recipe', 'paper')})",
                 f"{pm(r['mpjpe_scratch_mm'], r.get('scratch_std_mm', 0))} (scratch)",
                 f"{r['mpjpe_scratch_mm'] / r['mpjpe_pretrained_mm']:.2f}x")]
        for variant, v in r.get("ablation", {}).items():
            rows.append((f"pre-training proxy ablation: {variant} (test MPJPE mm at s_in=20 / s_in=5)",
                         f"{pm(v['s20_mm'], v['s20_std_mm'])} / {pm(v['s5_mm'], v['s5_std_mm'])}",
                         "", ""))
        return rows
    if name == "reliability":
        phases = ", ".join(f"{k} {v}" for k, v in r.get("kills_by_phase", {}).items())
        return [("reliability: malformed files (distinct) / escaped exceptions / pickle payloads run",
                 f"{_n(r['fuzz_cases'])} ({_n(r['fuzz_distinct'])}) / {r['fuzz_escaped']} / {r['payloads_executed']}",
                 "", ""),
                ("reliability: verified SIGKILLs of builds / equal after rerun / bytes lost / half-written seen",
                 f"{r['kill_trials']} / {r['equal_builds']} / {r['bytes_lost']} / {r['half_written_seen']}", "",
                 phases),
                ("reliability: SIGKILLs in checkpoint writes / resumes equal",
                 f"{r['checkpoint_kills']} / {r['checkpoint_resumes_equal']}", "", ""),
                ("reliability: garbage after kill trials, before / after `mocap-corpus gc` (bytes)",
                 f"{_n(r['garbage_bytes_before_gc'])} / {_n(r['garbage_bytes_after_gc'])}", "", ""),
                ("reliability: hostile files / crashes / hangs / over budget",
                 f"{r.get('hostile_cases', 'n/a')} / {r.get('hostile_crashes', 'n/a')} / "
                 f"{r.get('hostile_hangs', 'n/a')} / {r.get('hostile_over_budget', 'n/a')}", "", ""),
                ("reliability: integrity cases (issue 23, 8 classes) / failures",
                 f"{r.get('integrity_cases', 'n/a')} / {r.get('integrity_failures', 'n/a')}", "",
                 f"slowest {r.get('integrity_max_seconds', 'n/a')} s, largest +{r.get('integrity_max_rss_mb', 'n/a')} MB")]
    if name == "window_reads":
        return [("corpus random window reads (windows/s, one window a call vs block reads)",
                 _n(r["block_windows_per_s"]), f"{_n(r['one_window_per_s'])} (one window a call)",
                 f"{r['block_windows_per_s'] / r['one_window_per_s']:.1f}x")]
    if name == "demo":
        return [("demo pipeline wall time (fresh workspace: data, server, builds, training)", f"{r['wall_s']:.0f} s", "", "")]
    return [(name, json.dumps(r), "", "")]


def results_markdown(results: dict) -> str:
    """RESULTS.md's text for ``results`` (results.json's content): a pure function of it, so a test can
    regenerate the file and compare. Every row names the machine and the date it was measured on."""
    when = max((e.get("started", "") for e in results.values()), default="")
    lines = ["# Benchmark results", "",
             f"Written by `make bench` (`benchmarks/run_all.py`); last run {when}. Body model: {BODY_MODEL}; its",
             "regressor is in SPIN's row order and goes through the build's side resolution. Each script times",
             "ours and the baseline side by side in one run; a loaded machine lowers both, ratios are noisier.", "",
             "| measure | ours | baseline | ratio | script and arguments | machine, date (UTC) |",
             "|---|---|---|---|---|---|"]
    for name, e in results.items():
        cmd = f"`{e['script']} {' '.join(e['args'])}`".replace(" `", "`")
        try:
            rows = rows_for(name, e)
        except (KeyError, TypeError, ZeroDivisionError):  # a script changed its JSON line: show it raw
            rows = [(name, json.dumps(e.get("result"))[:400], "", "")]
        for measure, ours, base, ratio in rows:
            if e.get("quick"):
                measure += " (--quick sizes: a smoke run, not a figure)"
            where = ", ".join(x for x in (e.get("machine", ""), e.get("started", "")[:10] or "date not recorded") if x)
            lines.append(f"| {measure} | {ours} | {base} | {ratio} | {cmd} | {where} |")
    return "\n".join(lines) + "\n"


def write_results_md(results: dict) -> str:
    text = results_markdown(results)
    RESULTS_MD.write_text(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join([*BENCHMARKS, "demo"]))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to try the runner (figures meaningless)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README's figures")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: rewrite RESULTS.md and the README's figures from results.json")
    a = ap.parse_args(argv)
    if a.render_only:
        write_results_md(json.loads(RESULTS_JSON.read_text()))
        if not a.no_readme:
            from benchmarks.readme_figures import update_readme

            update_readme()
        return 0
    names = [n for n in a.only.split(",") if n] or [*BENCHMARKS, "demo"]
    unknown = set(names) - {*BENCHMARKS, "demo"}
    if unknown:
        ap.error(f"unknown benchmarks {sorted(unknown)}")
    previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() and a.only else {}
    t0 = time.perf_counter()
    fresh = {n: (run_demo() if n == "demo" else run_one(n, a.quick)) for n in names}
    order = [*BENCHMARKS, "demo"]
    results = {n: fresh.get(n) or previous[n] for n in order if n in fresh or n in previous}
    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    print(write_results_md(results))
    print(f"make bench: {time.perf_counter() - t0:.0f} s", flush=True)
    if not a.no_readme:
        from benchmarks.readme_figures import update_readme

        update_readme()
    return 0 if all("result" in e for e in fresh.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
