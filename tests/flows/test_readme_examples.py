"""The README's examples run as written, in order, in an empty folder, on the synthetic data the README
itself creates: the command-line block (``## Command line``) and the Prefect block (``## Prefect``, through
``flows up``: a real local server serving every deployment). An example that fails fails here.

The commands are read from README.md, not copied: ``mocap-corpus`` runs as ``python -m flows.cli`` of
this interpreter, ``python`` / ``.venv/bin/python`` as this interpreter, ``prefect`` as the venv's
console script. The one change: ``flows up`` gets a free port instead of 4200 (tests run side by side).
Also checked on the way: each command's stderr holds no traceback and no WARNING, every picture the
flows publish loads over HTTP from the server (embedded, or at a URL a browser can fetch).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from flows.server import free_port, prefect_exe, wait_deployments, wait_healthy

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


# ------------------------------------------------------------------------------------------ reading README

def bash_block(section: str, readme: str | None = None) -> str:
    """The first ```bash block after the ``## {section}`` heading."""
    text = README.read_text() if readme is None else readme
    start = text.index(f"\n## {section}\n")
    m = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert m, f"no bash block under ## {section}"
    return m.group(1)


def commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def argv(words: list[str]) -> list[str]:
    """README words -> what to run here."""
    head, rest = words[0], words[1:]
    if head == "mocap-corpus":
        return [sys.executable, "-m", "flows.cli", *rest]
    if head in ("python", ".venv/bin/python"):
        return [sys.executable, *rest]
    if head == "prefect":
        return [prefect_exe(), *rest]
    raise AssertionError(f"README runs {head!r}: teach this test what that is")


def test_the_blocks_parse_into_commands():
    block = 'a x \\\n    --y "p q"   # comment\n\n# only a comment\nb \'c d\'\n'
    assert commands(block) == [["a", "x", "--y", "p q"], ["b", "c d"]]
    cli = commands(bash_block("Command line"))
    assert len(cli) >= 20 and all(c[0] in ("mocap-corpus", "python") for c in cli)


def _env(workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["COLUMNS"] = "100"
    env.pop("DASK_LOGGING__DISTRIBUTED", None)
    env["PREFECT_HOME"] = str(workdir / ".prefect-client")  # the prefect CLI's own profile, not ~/.prefect
    return env


def _run(words: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(argv(words), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    shown = " ".join(shlex.quote(w) for w in words)
    assert r.returncode == 0, f"README example failed (exit {r.returncode}): {shown}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr and "WARNING" not in r.stderr, f"{shown}\n{r.stderr[-3000:]}"
    return r


# ------------------------------------------------------------------------------------------ the command line

def test_command_line_examples_run_as_written(tmp_path):
    env = _env(tmp_path)
    ran = []
    for words in commands(bash_block("Command line")):
        _run(words, tmp_path, env)
        ran.append(words[1] if words[0] == "mocap-corpus" else words[0])
    # what the examples promise is there
    for f in ("j.npy", "walk.png", "clip.gif", "renders/median.png", "renders/worst.png", "walk3d.npy", "walk3d.gif",
              "keypoints.npy", "poses.npy", "export/data_3d_h36m.npz", "export/data_2d_h36m_cpn_ft_h36m_dbb.npz",
              "runs/finetune/metrics.png"):
        assert (tmp_path / f).is_file() and (tmp_path / f).stat().st_size > 0, f
    assert {"synth", "inspect", "joints", "build-amass", "build-h36m", "versions", "validate", "rejects", "diff", "tag",
            "export-vp3d", "gc", "show", "train", "evaluate", "infer"} <= set(ran)
    assert_git_ignores(tmp_path)


def assert_git_ignores(workdir: Path, per_folder: int = 200) -> None:
    """Everything the examples wrote, were they run in the checkout, is ignored by its .gitignore."""
    made = []
    for top in sorted(workdir.iterdir()):
        if top.name.startswith(".prefect-client"):
            continue  # this test's own prefect CLI profile
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())[:per_folder]
        made += [str(p.relative_to(workdir)) for p in files]
    r = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input="\n".join(made),
                       capture_output=True, text=True, timeout=60)
    ignored = set(r.stdout.splitlines())
    assert made and not set(made) - ignored, sorted(set(made) - ignored)[:20]


# ------------------------------------------------------------------------------------------ Prefect

def _flows_up(words: list[str], cwd: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """Start the README's ``flows up`` line (a free port for 4200); returns the process and the API URL."""
    words = list(words)
    port = str(free_port())
    words[words.index("--port") + 1] = port
    log = open(cwd / ".prefect-client-flows-up.log", "w")  # (skipped by assert_git_ignores)
    proc = subprocess.Popen(argv(words), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    from flows.serve import DEPLOYMENT_NAMES

    wait_healthy(api, timeout_s=300, proc=proc)
    wait_deployments(api, DEPLOYMENT_NAMES, timeout_s=300, proc=proc)
    return proc, api


def _stop(proc: subprocess.Popen, home: Path) -> list:
    """Ctrl-C ``flows up`` as a user would; then nothing that ran under its PREFECT_HOME may be left."""
    import psutil

    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    left = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("PREFECT_HOME") == str(home) and p.pid != os.getpid():
                left.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    for p in left:
        p.kill()
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    return left


def _api(api: str, path: str, body: dict | None = None):
    req = urllib.request.Request(f"{api}/{path}", data=json.dumps(body or {}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def image_sources(artifact: dict) -> list[str]:
    """Every image an artifact asks a browser to load: an image artifact's URL, a markdown artifact's
    ``![...](src)`` sources and ``<img src=...>`` tags."""
    if artifact["type"] == "image":
        return [artifact["data"]]
    if artifact["type"] != "markdown" or not isinstance(artifact["data"], str):
        return []
    md = artifact["data"]
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md) + re.findall(r"<img[^>]*\bsrc=[\"']([^\"']+)", md)


def load_image(src: str, api: str) -> bytes:
    """The bytes a browser showing the UI at ``api``'s host gets for ``src`` (data: decoded, http(s) fetched);
    AssertionError for anything a browser on an http:// page cannot show (file://, relative paths)."""
    if src.startswith("data:image/"):
        head, _, payload = src.partition(",")
        assert head.endswith(";base64"), head
        return base64.b64decode(payload, validate=True)
    assert src.startswith(("http://", "https://")), f"a browser cannot load {src[:120]!r} from {api}"
    with urllib.request.urlopen(src, timeout=30) as r:
        return r.read()


def check_images(api: str, flow_run_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Every image of every artifact of these runs loads and decodes; returns {artifact key: (w, h)}."""
    from PIL import Image

    arts = _api(api, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": flow_run_ids}}})
    seen = {}
    for a in arts:
        for src in image_sources(a):
            img = Image.open(io.BytesIO(load_image(src, api)))
            img.load()
            assert img.size[0] > 100 and img.size[1] > 100, (a["key"], img.size)
            seen[a["key"]] = img.size
    return seen


def test_prefect_examples_run_as_written_through_a_real_server(tmp_path):
    env = _env(tmp_path)
    for words in commands(bash_block("Command line")):  # the synthetic data the README creates
        if words[:2] == ["mocap-corpus", "synth"]:
            _run(words, tmp_path, env)
    block = commands(bash_block("Prefect"))
    assert block[0][-4:] == ["--home", ".prefect", "--port", "4200"] and "up" in block[0]
    proc, api = _flows_up(block[0], tmp_path, env)
    run_ids = []
    try:
        for words in block[1:]:
            if words[0] == "export":
                name, _, value = words[1].partition("=")
                env[name] = value.replace("http://127.0.0.1:4200/", api.removesuffix("api"))
                continue
            r = _run(words, tmp_path, env)
            m = re.search(r"UUID: ([0-9a-f-]{36})", r.stdout)
            assert m, r.stdout[-2000:]
            run_ids.append(m.group(1))
            assert "Completed" in r.stdout, r.stdout[-3000:]
        # the relative paths resolved where flows up was started (the README's rule)
        for f in ("corpora/amass", "corpora/h36m", "runs/pretrain/metrics.png", "runs/finetune/metrics.png",
                  "walk3d.npy", "walk3d.png"):
            assert (tmp_path / f).exists(), f
        assert_git_ignores(tmp_path)
        shown = check_images(api, run_ids)
        assert {"build-amass-contact-sheet", "build-h36m-contact-sheet", "pretrain-plot",
                "finetune-plot", "evaluate-median-window", "evaluate-worst-window", "infer-render"} <= set(shown)
        progress = [a for a in _api(api, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": run_ids},
                                                                            "type": {"any_": ["progress"]}}})]
        assert progress and all(float(a["data"]) == 100.0 for a in progress), [(a["description"], a["data"]) for a in progress]
    finally:
        left = _stop(proc, (tmp_path / ".prefect").resolve())
    assert not left, f"processes left after Ctrl-C: {[p.pid for p in left]}"
