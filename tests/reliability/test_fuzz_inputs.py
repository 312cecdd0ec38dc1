"""Property-based fuzzing of every loader of third-party files (>= 1,000 malformed files each).

Every case must end in the project's typed error (an ``InputError``) or a successful load; no other
exception escapes, no pickle payload runs, and memory stays bounded.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.synthetic.malformed import MUTATIONS, WRITERS
from schemas.errors import InputError

CASES = 1000


def _loaders(kind: str):
    if kind == "amass":
        from pipelines.amass import read_amass

        return [read_amass]
    if kind == "body_model":
        from pipelines.body_model import load_body_model

        return [load_body_model]
    if kind == "regressor":
        from pipelines.body_model import load_regressor

        return [load_regressor]
    from pipelines.h36m import load_positions_2d, load_positions_3d

    return [load_positions_3d, load_positions_2d]


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="fuzz_"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_loader_survives_malformed_files(kind, workdir):
    writer, suffixes = WRITERS[kind]
    loaders = _loaders(kind)
    marker = workdir / f"{kind}.executed"
    outcomes = {"typed_error": 0, "loaded": 0}
    rss0 = psutil.Process().memory_info().rss
    counter = iter(range(10**9))

    @settings(max_examples=CASES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(mutation=st.sampled_from(MUTATIONS), suffix=st.sampled_from(suffixes),
           seed=st.integers(0, 2**32 - 1))
    def case(mutation, suffix, seed):
        path = workdir / kind / f"case{next(counter)}{suffix}"
        path.parent.mkdir(exist_ok=True)
        what = writer(np.random.default_rng(seed), mutation, path, str(marker))
        for load in loaders:
            try:
                load(path)
                outcomes["loaded"] += 1
            except InputError as exc:
                assert exc.reason and str(path) in str(exc), (what, exc)
                outcomes["typed_error"] += 1
            except Exception as exc:  # noqa: BLE001 - this is exactly what must never happen
                raise AssertionError(f"{kind}/{mutation} ({what}) escaped as {type(exc).__name__}: {exc}")
        assert not marker.exists(), f"payload executed: {kind}/{mutation}"
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    case()
    assert sum(outcomes.values()) >= CASES
    assert outcomes["typed_error"] > 0.8 * CASES  # malformed files are refused, not accepted
    grown_mb = (psutil.Process().memory_info().rss - rss0) / 1e6
    assert grown_mb < 500, f"memory grew by {grown_mb:.0f} MB over {CASES} cases"
