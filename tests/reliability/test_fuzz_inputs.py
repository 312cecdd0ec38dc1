"""Property-based fuzzing of every loader of third-party files (>= 1,000 malformed files each).

Every case must end in the project's typed error (an ``InputError`` naming the file) or a successful
load; no other exception escapes, no pickle payload runs, and memory stays bounded.
"""

from __future__ import annotations

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.synthetic.malformed import MUTATIONS, WRITERS
from tests.reliability.harness import fuzz_case

CASES = 1000


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_loader_survives_malformed_files(kind, tmp_path):
    _, suffixes = WRITERS[kind]
    marker = tmp_path / "payload.executed"
    totals = {"typed_errors": 0, "loaded": 0}
    rss0 = psutil.Process().memory_info().rss

    @settings(max_examples=CASES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(mutation=st.sampled_from(MUTATIONS), suffix=st.sampled_from(suffixes), seed=st.integers(0, 2**32 - 1))
    def case(mutation, suffix, seed):
        out = fuzz_case(kind, mutation, suffix, seed, tmp_path, marker)
        assert not out.escaped, out.escaped
        assert not out.payload_ran, f"payload executed: {kind}/{mutation}"
        totals["typed_errors"] += out.typed_errors
        totals["loaded"] += out.loaded

    case()
    assert sum(totals.values()) >= CASES
    assert totals["typed_errors"] > 0.8 * CASES  # malformed files are refused, not accepted
    grown_mb = (psutil.Process().memory_info().rss - rss0) / 1e6
    assert grown_mb < 500, f"memory grew by {grown_mb:.0f} MB over {CASES} cases"


def test_a_build_full_of_bad_files_commits_every_good_sequence(tmp_path):
    """Malformed files among good ones become rejects; every good sequence is committed."""
    import numpy as np

    from pipelines.build import build_amass
    from pipelines.synthetic.malformed import write_malformed_amass
    from tests.reliability.harness import build_config, make_inputs

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
    from pipelines.corpus import CorpusReader

    committed = set(CorpusReader.open(tmp_path / "corpus").sequences.column("source_path").to_pylist())
    assert committed == {str(p) for p in good}
    assert sorted(r.source_path for r in report.rejects) == sorted(str(p) for p in bad_dir.iterdir())
    assert len(report.rejects) == n_bad and all(r.reason for r in report.rejects)
    assert not (tmp_path / "marker").exists()
