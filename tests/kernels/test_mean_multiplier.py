"""kernels.fixedpoint.mean_multiplier (TFLite MEAN's integer 1/n fold) against its Python-int
twin and against the real multiplier it approximates."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from kernels.fixedpoint import mean_multiplier, mean_multiplier_ref, quantize_multiplier_ref


@settings(max_examples=300, deadline=None)
@given(real=st.floats(2.0**-20, 2.0**8), n=st.integers(1, 1 << 20) | st.sampled_from([1, 2, 3, 4, 7, 8, 49, 64]))
def test_fold_equals_twin_and_approximates_real_over_n(real, n):
    m0, shift = (int(v.reshape(-1)[0]) for v in quantize_multiplier_ref(np.array([real])))
    m, s = mean_multiplier(np.array([m0]), np.array([shift]), np.array([n]))
    assert (int(m[0]), int(s[0])) == mean_multiplier_ref(m0, shift, n)
    assert s[0] >= -31 and 0 <= m[0] < 2**31
    k = shift - int(s[0])
    # the fold loses at most one unit of (m0 << k) / n
    approx = int(m[0]) * 2.0 ** (int(s[0]) - 31)
    assert abs(approx - m0 * 2.0 ** (shift - 31) / n) <= 2.0 ** (int(s[0]) - 31) + 1e-300
    assert k == min(n.bit_length() - 1, 32, 31 + shift)


def test_known_fold():
    # sx / sy = 1: m0 = 2**30, shift = 1; n = 3: k = 1, m = 2**31 // 3
    assert mean_multiplier_ref(1 << 30, 1, 3) == ((1 << 31) // 3, 0)
    m, s = mean_multiplier(np.array([1 << 30]), np.array([1]), np.array([3]))
    assert (int(m[0]), int(s[0])) == ((1 << 31) // 3, 0)
