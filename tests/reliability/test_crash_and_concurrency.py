"""Killed builds, killed Dask workers, killed training and concurrent builds lose nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.build import build_amass
from pipelines.checksums import corpus_checksums
from pipelines.corpus import CorpusReader
from schemas.validate import validate_corpus
from tests.reliability.harness import (build_config, concurrent_builds, final_weights, kill_build_trial,
                                       kill_delays, kill_training_trial, killed_worker_build, make_inputs,
                                       run_training, timed_build, write_train_config)

KILL_TRIALS = 10
# Named phases first (while writing sequences, just before the commit), then random moments.
FAULTS = ["write:1", "write:3", "write:6", "commit"] + [None] * (KILL_TRIALS - 4)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("crash"))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("reference") / "corpus"
    build_amass(build_config(inputs, corpus))
    return corpus_checksums(CorpusReader.open(corpus))


def test_sigkilled_builds_rerun_to_identical_content(inputs, reference, tmp_path):
    delays = kill_delays(timed_build(inputs, tmp_path / "timed"), len(FAULTS), np.random.default_rng(7))
    for i, (fault, delay) in enumerate(zip(FAULTS, delays)):
        trial = kill_build_trial(inputs, tmp_path / f"trial{i}", reference, fault, delay)
        assert trial.killed, f"trial {i} ({fault or f'{delay:.1f} s'}): the build ended before the kill"
        assert trial.whole_after_crash, f"trial {i} ({fault}): a half-written version was visible"
        assert trial.equal_after_rerun and trial.bytes_lost == 0, f"trial {i} ({fault}) differs after the rerun"
    assert validate_corpus(tmp_path / "trial0") == []


def test_killed_dask_worker_build_still_completes(inputs, reference, tmp_path):
    assert killed_worker_build(inputs, tmp_path / "corpus"), "no worker was killed"
    assert corpus_checksums(CorpusReader.open(tmp_path / "corpus")) == reference


def test_two_concurrent_builds_and_a_pinned_reader(inputs, tmp_path):
    out = concurrent_builds(inputs, tmp_path / "corpus")
    assert out.pinned_reader_unchanged, "a reader pinned to the old version saw it change"
    for code, text in zip(out.exit_codes, out.outputs):
        if code != 0:  # the only acceptable failure is a clearly reported conflict
            assert "conflict" in text.lower(), text[-2000:]
    committed = sum(c == 0 for c in out.exit_codes)
    assert committed >= 1 and out.versions_added == committed  # each success is one commit, in sequence
    assert out.valid


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    from tests.uplift.test_train import projected_corpus

    corpus = projected_corpus(tmp_path / "corpus", n_seq=3, n_frames=160)
    config = write_train_config(tmp_path / "tiny.json")
    run_training(config, corpus, tmp_path / "straight")
    killed = kill_training_trial(config, corpus, tmp_path / "killed", delay_s=0.3)
    assert killed, "training finished before it could be killed"
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed training reached different weights"
