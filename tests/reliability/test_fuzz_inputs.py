"""Property-based fuzzing of every loader of third-party files (>= 1,000 malformed files each).

Every case must end in the project's typed error (an ``InputError`` naming the file) or a successful
load; no other exception escapes, no pickle payload runs, and memory stays bounded.
"""

from __future__ import annotations

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.builds import build_config, make_inputs
from tests.support.fuzz import FuzzStats, fuzz_case
from tests.support.malformed import DEEP_BODY_MODEL_MUTATIONS, FILE_MUTATIONS, MUTATIONS, WRITERS, mutations

CASES = 1000
# Each body-model case is a full 6890-vertex SMPL+H file (~40 MB): fewer here, 1,000 in the report.
CASES_BY_KIND = {"body_model": 120}
# Checks deep inside the body-model loader that only a well-formed full-size model can reach.
DEEP_BODY_MODEL_REASONS = ("skinning weights", "faces index", "kintree_table", "vertices, but", "posedirs has shape")
# Broken containers are never a valid file. (A junk member the loader never reads, an extra key or a
# NaN in a detection array can still give a valid file: those count as loaded valid, not as refused.)
ALWAYS_REFUSED = tuple(m for m in FILE_MUTATIONS if m != "bad_member")


# the body-model loader takes ~45 s on 2 cores (large arrays in every malformed file): slow
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k == "body_model" else k
                                  for k in sorted(WRITERS)])
def test_loader_survives_malformed_files(kind, tmp_path):
    _, suffixes = WRITERS[kind]
    cases = CASES_BY_KIND.get(kind, CASES)
    marker = tmp_path / "payload.executed"
    stats = FuzzStats()
    rss0 = psutil.Process().memory_info().rss

    @settings(max_examples=cases, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(mutation=st.sampled_from(mutations(kind)), suffix=st.sampled_from(suffixes), seed=st.integers(0, 2**32 - 1))
    def case(mutation, suffix, seed):
        out = fuzz_case(kind, mutation, suffix, seed, tmp_path, marker)
        assert not out.escaped, out.escaped
        assert not out.payload_ran, f"payload executed: {kind}/{mutation}"
        assert not (mutation in ALWAYS_REFUSED and out.valid), f"{kind}/{mutation}{suffix}: a broken file loaded"
        stats.add(out)

    case()
    if kind == "body_model":  # each deep check once more, drawn or not: the fuzz must reach every one
        for mutation in DEEP_BODY_MODEL_MUTATIONS:
            stats.add(fuzz_case(kind, mutation, suffixes[0], 0, tmp_path, marker))
    assert stats.cases >= cases
    # hypothesis repeats small seeds; the report (seeded, not shrinking) shows the real distinct share
    assert stats.distinct >= 0.5 * stats.cases, f"only {stats.distinct} distinct files in {stats.cases} cases"
    assert stats.cases - stats.loaded_valid > 0.6 * stats.cases  # malformed files are refused, not accepted
    if kind == "body_model":
        for reason in DEEP_BODY_MODEL_REASONS:
            assert any(reason in r for r in stats.reasons), f"no case reached the check {reason!r}: {stats.reasons}"
    grown_mb = (psutil.Process().memory_info().rss - rss0) / 1e6
    assert grown_mb < 500, f"memory grew by {grown_mb:.0f} MB over {stats.cases} cases"


@pytest.mark.slow
def test_a_build_full_of_bad_files_commits_every_good_sequence(tmp_path):
    """Malformed files among good ones become rejects; every good sequence is committed."""
    import numpy as np

    from pipelines.build_amass import build_amass
    from tests.support.malformed import write_malformed_amass

    root = make_inputs(tmp_path / "in", n_sequences=4)
    good = sorted(p for p in (root / "amass").rglob("*.npz") if p.name != "shape.npz")
    bad_dir = root / "amass" / "Fuzzed" / "s1"
    bad_dir.mkdir(parents=True)
    # extra keys and a corrupt member under an unused key are inert by design: those files are valid
    for i, mutation in enumerate(m for m in MUTATIONS if m not in ("extra_key", "bad_member", "directory")):
        write_malformed_amass(np.random.default_rng(i), mutation, bad_dir / f"bad{i:02d}_poses.npz",
                              str(tmp_path / "marker"))
    n_bad = len(list(bad_dir.iterdir()))
    report = build_amass(build_config(root, tmp_path / "corpus"))
    from schemas.reader import CorpusReader

    committed = set(CorpusReader.open(tmp_path / "corpus").sequences.column("source_path").to_pylist())
    assert committed == {str(p) for p in good}
    assert sorted(r.source_path for r in report.rejects) == sorted(str(p) for p in bad_dir.iterdir())
    assert len(report.rejects) == n_bad and all(r.reason for r in report.rejects)
    assert not (tmp_path / "marker").exists()
