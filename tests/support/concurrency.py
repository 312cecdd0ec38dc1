"""Concurrent writers: two builds started together, several writer processes committing rounds to one
corpus, each with a reader pinned to an older version re-reading it throughout.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support import REPO
from tests.support.builds import build_cmd, build_config, kill_group
from tests.support.corpus_fixtures import make_seq
from pipelines.build_amass import build_amass
from pipelines.hashing import corpus_checksums
from schemas.versions import list_versions
from pipelines.writer import CorpusWriter
from schemas.reader import CorpusReader
from schemas.validate import validate_corpus


@dataclass
class ConcurrentOutcome:
    exit_codes: list
    outputs: list
    versions_added: int
    pinned_reader_unchanged: bool
    valid: bool
    in_sequence: bool = False  # the two new versions are the two builds (fps 25 and 30), each whole


def concurrent_builds(root: Path, corpus: Path) -> ConcurrentOutcome:
    """Tag a first build "old", then run two builds (different fps) into the same corpus at once while
    a reader pinned to "old" keeps re-reading it."""
    build_amass(build_config(root, corpus, tag="old"))
    before, n_before = corpus_checksums(CorpusReader.open(corpus, "old")), len(list_versions(corpus))
    procs = [subprocess.Popen(build_cmd(root, corpus, "--fps", fps), start_new_session=True, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for fps in ("25", "30")]
    same, stop = [], threading.Event()

    def keep_reading():
        while not stop.is_set():
            same.append(corpus_checksums(CorpusReader.open(corpus, "old")) == before)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        outputs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        stop.set()
        reader.join()
        for p in procs:
            if p.poll() is None:
                kill_group(p)
    unchanged = bool(same) and all(same) and corpus_checksums(CorpusReader.open(corpus, "old")) == before
    new = list_versions(corpus)[: len(list_versions(corpus)) - n_before]
    in_sequence = (sorted(CorpusReader.open(corpus, v.id).fps for v in new) == [25.0, 30.0]
                   and all(validate_corpus(corpus, v.id) == [] for v in new))
    return ConcurrentOutcome([p.returncode for p in procs], outputs, len(new), unchanged,
                             validate_corpus(corpus) == [], in_sequence)


_WRITER_SCRIPT = """
import sys, numpy as np
from tests.support.corpus_fixtures import make_seq
from pipelines.writer import CorpusWriter
from schemas.errors import VersionConflictError
path, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
done = conflicts = 0
while done < rounds and conflicts < 500:
    with CorpusWriter(path) as w:
        w.add(make_seq(np.random.default_rng(1000 * done + ord(who)), f"{who}/{done}", 40 + 10 * done))
        try:
            w.commit(f"{who} {done}")
            done += 1
        except VersionConflictError:
            conflicts += 1
print(done, conflicts)
"""


@dataclass
class RoundsOutcome:
    commits: int  # commits the writers reported
    conflicts: int  # refused commits they retried
    versions_added: int
    all_whole: bool  # every new version validates and holds exactly the sequence its writer added
    pinned_reader_unchanged: bool


def writer_rounds(corpus: Path, writers: int = 3, rounds: int = 5) -> RoundsOutcome:
    """``writers`` processes each commit ``rounds`` versions to one corpus at once (retrying refused
    commits), while a reader pinned to the version before them keeps re-reading it."""
    with CorpusWriter(corpus) as w:
        w.add(make_seq(np.random.default_rng(0), "base/0", 30))
        old = w.commit("base")
    before, n_before = corpus_checksums(CorpusReader.open(corpus, old)), len(list_versions(corpus))
    names = [chr(ord("P") + i) for i in range(writers)]
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(corpus), who, str(rounds)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in names]
    same, stop = [], threading.Event()

    def keep_reading():
        while not stop.is_set():
            same.append(corpus_checksums(CorpusReader.open(corpus, old)) == before)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        outs = [p.communicate(timeout=900) for p in procs]
    finally:
        stop.set()
        reader.join()
    commits = conflicts = 0
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            raise RuntimeError(f"writer failed: {err[-2000:]}")
        d, c = map(int, out.split()[-2:])
        commits, conflicts = commits + d, conflicts + c
    new = list_versions(corpus)[: len(list_versions(corpus)) - n_before]
    whole = True
    for v in new:
        who, i = v.message.split()
        r = CorpusReader.open(corpus, v.id)
        whole &= (validate_corpus(corpus, v.id) == [] and r.sequences.column("key").to_pylist() == [f"{who}/{i}"]
                  and r.sequences.column("n_frames").to_pylist() == [40 + 10 * int(i)])
    unchanged = bool(same) and all(same) and corpus_checksums(CorpusReader.open(corpus, old)) == before
    return RoundsOutcome(commits, conflicts, len(new), whole, unchanged)
