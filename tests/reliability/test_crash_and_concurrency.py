"""Killed builds (inside chunk writes, between flushes, inside the Icechunk commit, before the tag, at
random moments), killed Dask workers, killed checkpoint saves and concurrent writers lose nothing.

A few representative trials run here; the slow tests and benchmarks/reliability_report.py run the
long counts."""

from __future__ import annotations

import pytest

from tests.support.builds import build_config, make_inputs
from tests.support.checkpoint_kills import checkpoint_kill_trial, final_weights, run_training, write_train_config
from tests.support.concurrency import concurrent_builds, writer_rounds
from tests.support.kill_trials import TRIAL_TAG, killed_worker_build, run_kill_trials
from tests.support.training_corpus import projected_corpus
from pipelines.build_amass import build_amass
from pipelines.hashing import corpus_checksums
from schemas.reader import CorpusReader

pytestmark = pytest.mark.slow  # every trial runs builds or training in child processes (5-45 s each on 2 cores)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("crash"))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("reference") / "corpus"
    build_amass(build_config(inputs, corpus, tag=TRIAL_TAG))
    return corpus_checksums(CorpusReader.open(corpus))


def assert_trials(out, min_killed: int, min_in_write_or_commit: int):
    for i, (aim, t) in enumerate(zip(out.chosen, out.trials)):
        what = f"trial {i} ({t.fault or f'random at {t.delay_s:.2f} s'}, landed in {t.phase})"
        if t.fault is not None:  # a named point must be reached and be where the kill landed
            assert t.killed, f"{what}: the child never reached its kill point"
            assert t.phase == aim, what
        assert t.repo_opened, f"{what}: the repository did not open after the kill"
        assert t.half_written_seen == 0, f"{what}: a half-written version was visible"
        assert t.equal_after_rerun and t.bytes_lost == 0, f"{what}: the rerun differs from an uninterrupted build"
    killed = out.verified()
    assert len(killed) >= min_killed
    inside = [t for t in killed if t.phase in ("chunk_write", "icechunk_commit")]
    assert len(inside) >= min_in_write_or_commit
    assert any(t.flushes_before_kill >= 3 for t in killed), "no kill landed after several flushes"
    # garbage: killed builds leave bytes behind; gc takes them back without touching the tagged version
    assert out.garbage_before_gc() > 0
    assert abs(out.garbage_after_gc()) <= 1024 * len(out.trials), out.gc_after
    assert out.gc_equal


def test_sigkilled_builds_rerun_to_identical_content(inputs, reference, tmp_path):
    """One kill per named phase (inside a chunk write, between flushes, inside the Icechunk commit,
    between commit and tag) and two random moments; the long count is the slow test below."""
    out = run_kill_trials(inputs, tmp_path, reference, n_random=2, seed=7, per_phase=1)
    assert_trials(out, min_killed=4, min_in_write_or_commit=2)


def test_many_sigkilled_builds(inputs, reference, tmp_path):
    """>= 20 verified kills, >= 5 of them inside a chunk write or the Icechunk commit."""
    out = run_kill_trials(inputs, tmp_path, reference, n_random=14, seed=11)
    assert_trials(out, min_killed=20, min_in_write_or_commit=5)


def test_killed_dask_worker_build_still_completes(inputs, reference, tmp_path):
    assert killed_worker_build(inputs, tmp_path / "corpus"), "no worker was killed"
    assert corpus_checksums(CorpusReader.open(tmp_path / "corpus")) == reference


def test_two_concurrent_builds_both_commit_in_sequence(inputs, tmp_path):
    """Two builds started together: the second's commit is refused, it rebuilds on top of the first
    one's version and commits too; a reader pinned to the older version sees it unchanged throughout."""
    out = concurrent_builds(inputs, tmp_path / "corpus")
    assert out.pinned_reader_unchanged, "a reader pinned to the old version saw it change"
    assert out.exit_codes == [0, 0], [o[-2000:] for o in out.outputs]
    assert out.versions_added == 2 and out.in_sequence  # one after the other on the branch
    assert out.valid


def test_three_writers_five_rounds_and_a_pinned_reader(tmp_path):
    out = writer_rounds(tmp_path / "corpus", writers=3, rounds=5)
    assert out.commits == 15 and out.versions_added == 15, out
    assert out.all_whole, "a version holds something other than the one sequence its writer added"
    assert out.pinned_reader_unchanged


@pytest.fixture(scope="module")
def straight_training(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("training")
    corpus = projected_corpus(tmp / "corpus", n_seq=3, n_frames=160)
    config = write_train_config(tmp / "tiny.json")
    run_training(config, corpus, tmp / "straight")
    return config, corpus, final_weights(tmp / "straight")


def assert_checkpoint_kills(straight_training, tmp_path, faults):
    config, corpus, straight = straight_training
    for i, fault in enumerate(faults):
        t = checkpoint_kill_trial(config, corpus, tmp_path / f"killed{i}", fault, straight)
        assert t.killed, f"{fault}: training never reached the kill point"
        assert t.last_complete is not None and t.resumed_from == t.last_complete, \
            f"{fault}: training loaded {t.resumed_from}, the last complete checkpoint is {t.last_complete}"
        assert t.steps_after == t.expected_steps, \
            f"{fault}: the restarted training took {t.steps_after} steps, the rest of the run is {t.expected_steps}"
        assert t.equal, f"{fault}: resumed training reached different weights"
        assert t.ok


def test_killed_checkpoint_save_resumes_from_the_last_complete_one(straight_training, tmp_path):
    """Killed with the old checkpoint moved aside and the new one not yet in (the window where the old
    code had none at all), while the new files were written, and after the new one moved in. The
    report (benchmarks/reliability_report.py) runs all of CHECKPOINT_KILLS."""
    assert_checkpoint_kills(straight_training, tmp_path, ["ckpt_aside:2", "ckpt_files:3", "ckpt_in:5"])
