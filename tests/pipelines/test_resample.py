"""Linear resampling against analytic signals and an independent interpolator (np.interp)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from pipelines.resample import apply_plan, plan_resample


def resample_linear(x, src_fps, target_fps):
    """(T, ...) -> (T', ...) through the path the build takes: plan, then blend the needed frames."""
    plan = plan_resample(len(x), src_fps, target_fps)
    return apply_plan(plan, np.asarray(x)[plan.needed])

AMASS_120 = 120.00004577636719  # float32 120 Hz as stored by AMASS

RATES = [(120.0, 50.0), (100.0, 50.0), (250.0, 50.0), (60.0, 50.0), (AMASS_120, 50.0), (59.94, 50.0),
         (30.0, 100.0), (50.0, 50.0), (24.0, 60.0)]


@pytest.mark.parametrize("src, dst", RATES)
def test_linear_ramp_is_reproduced_exactly(src, dst):
    n = 613
    t = np.arange(n) / src
    x = np.stack([0.3 + 1.7 * t, -2.0 * t], axis=-1)  # (T, 2) linear in time
    y = resample_linear(x, src, dst)
    t_out = np.arange(len(y)) / dst
    assert t_out[-1] <= (n - 1) / src * (1 + 1e-6)
    # tolerance: snapping moves a sample by at most 1e-3 source frames
    np.testing.assert_allclose(y[:, 0], 0.3 + 1.7 * np.minimum(t_out, t[-1]), atol=1.7e-3 / src + 1e-12)
    np.testing.assert_allclose(y[:, 1], -2.0 * np.minimum(t_out, t[-1]), atol=2e-3 / src + 1e-12)


@pytest.mark.parametrize("src, dst", RATES)
def test_sine_equals_linear_interpolation_of_its_samples(src, dst):
    n = 480
    t = np.arange(n) / src
    x = np.sin(2 * np.pi * 1.3 * t) + 0.5 * np.cos(2 * np.pi * 0.4 * t)
    y = resample_linear(x, src, dst)
    t_out = np.arange(len(y)) / dst
    expected = np.interp(t_out, t, x)  # independent linear interpolation between the source samples
    slope = np.abs(np.diff(x)).max()  # per source frame
    np.testing.assert_allclose(y, expected, atol=1e-3 * slope + 1e-12)


@pytest.mark.parametrize("n_src, src, dst, n_out", [
    (1201, 120.0, 50.0, 501),  # 10 s: 0, 0.02, ..., 10.0
    (1201, AMASS_120, 50.0, 501),  # the float32 rate must not drop the t = 10 s frame
    (1200, 120.0, 50.0, 500),  # span 9.9917 s -> last sample at 9.98 s
    (100, 100.0, 50.0, 50),  # span 0.99 s
    (10, 30.0, 100.0, 31),  # upsampling: span 0.3 s
    (1, 120.0, 50.0, 1),
    (2, 250.0, 50.0, 1),  # span 4 ms < one output period
])
def test_output_frame_counts_by_hand(n_src, src, dst, n_out):
    plan = plan_resample(n_src, src, dst)
    assert plan.n_out == n_out == len(plan.w) == len(plan.lo) == len(plan.hi)
    assert plan.needed.max() <= n_src - 1 and plan.needed.min() >= 0


def test_amass_120_hz_last_frame_is_the_last_source_frame():
    n = 30001  # 250 s: float rounding accumulates over long files
    plan = plan_resample(n, AMASS_120, 50.0)
    assert plan.n_out == 12501
    assert plan.needed[plan.lo[-1]] == n - 1 and plan.w[-1] == 0.0
    x = np.arange(n, dtype=np.float64)
    y = resample_linear(x, AMASS_120, 50.0)
    assert y[-1] == n - 1


def test_exact_hits_use_one_frame_and_needed_is_minimal():
    # 120 -> 50 Hz: output n sits at source position 12n/5; every 5th is an exact hit
    n_src = 1201
    plan = plan_resample(n_src, 120.0, 50.0)
    expected_needed = set()
    for n in range(plan.n_out):
        pos = Fraction(12 * n, 5)
        lo = pos.numerator // pos.denominator
        expected_needed.add(lo)
        if pos != lo:
            expected_needed.add(lo + 1)
    assert plan.needed.tolist() == sorted(expected_needed)
    exact = plan.w == 0
    assert exact.sum() == len(range(0, plan.n_out, 5))
    np.testing.assert_array_equal(plan.lo[exact], plan.hi[exact])
    np.testing.assert_array_equal(plan.needed[plan.lo[::5]], np.arange(0, n_src, 12))
    # 100 -> 50 Hz needs only every other frame
    half = plan_resample(100, 100.0, 50.0)
    np.testing.assert_array_equal(half.needed, np.arange(0, 100, 2))
    assert (half.w == 0).all()


def test_apply_plan_on_needed_frames_only_matches_all_frames():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(997, 17, 3)).astype(np.float32)
    plan = plan_resample(len(x), 250.0, 50.0)
    assert len(plan.needed) < len(x) / 4
    y = apply_plan(plan, x[plan.needed])
    assert y.dtype == np.float32 and y.shape == (plan.n_out, 17, 3)
    np.testing.assert_array_equal(y, resample_linear(x, 250.0, 50.0))
    src_lo, src_hi = plan.needed[plan.lo], plan.needed[plan.hi]
    manual = (1 - plan.w)[:, None, None] * x[src_lo].astype(np.float64) + plan.w[:, None, None] * x[src_hi]
    np.testing.assert_allclose(y, manual.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_random_rates_never_index_out_of_range():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 3000))
        src = float(rng.choice([rng.uniform(1, 400), AMASS_120, 59.94, 29.97, 100.0]))
        dst = float(rng.choice([rng.uniform(1, 400), 50.0, 25.0, 60.0]))
        plan = plan_resample(n, src, dst)
        assert plan.needed.max() < n and (np.diff(plan.needed) > 0).all()
        assert 0 <= plan.lo.min() and plan.hi.max() < len(plan.needed)
        assert ((plan.w >= 0) & (plan.w < 1)).all()
        assert (plan.n_out - 1) / dst <= (n - 1) / src * (1 + 1e-6) + 1e-9
        # one more output frame would land beyond the span
        assert plan.n_out / dst > (n - 1) / src * (1 + 1e-6) - 1e-9
        y = resample_linear(np.arange(n, dtype=np.float64), src, dst)
        np.testing.assert_allclose(y, np.minimum(np.arange(plan.n_out) * src / dst, n - 1), atol=2e-3)


@pytest.mark.parametrize("args", [(0, 120.0, 50.0), (10, 0.0, 50.0), (10, -1.0, 50.0), (10, 120.0, float("nan")),
                                  (10, float("inf"), 50.0)])
def test_invalid_arguments(args):
    with pytest.raises(ValueError):
        plan_resample(*args)


def test_apply_plan_checks_its_input():
    plan = plan_resample(50, 100.0, 50.0)
    with pytest.raises(ValueError):
        apply_plan(plan, np.zeros((len(plan.needed) + 1, 3)))
    with pytest.raises(TypeError):
        apply_plan(plan, np.zeros((len(plan.needed), 3), dtype=np.int64))
