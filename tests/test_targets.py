"""Requantization targets (DESIGN §3): each target's `apply` against the table's formula written
here in plain Python ints / exact rationals, pairs of targets on inputs where they disagree
(values worked out by hand), and the TOML user targets against the built-ins."""
import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from intsim.errors import AccumulatorOverflow, QuantParamError
from intsim.ir import INT8, UINT8, IntType, Requant
from intsim.targets import get_target
from intsim.targets.pow2 import Pow2Target
from intsim.targets.user import load_target_file

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
EXAMPLES = Path(__file__).resolve().parents[1] / "intsim" / "targets" / "examples"
EDGE_ACC = [I32_MIN, I32_MIN + 1, -(1 << 24) - 1, -7, -6, -5, -3, -2, -1, 0, 1, 2, 3, 5, 6, 7,
            (1 << 24) + 1, I32_MAX - 1, I32_MAX]


# ----------------------------------------------------------------------------- formulas (DESIGN §3)

def wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def rnd(x: Fraction, mode: str) -> int:
    if mode == "floor":
        return math.floor(x)
    if mode == "rhu":
        return math.floor(x + Fraction(1, 2))
    if mode == "rne":
        return round(x)
    if mode == "rhaz":
        return (1 if x >= 0 else -1) * math.floor(abs(x) + Fraction(1, 2))
    raise AssertionError(mode)


def q31(real: float, cap: bool):
    """TFLite QuantizeMultiplier: 2**(s-1) <= real < 2**s, M0 = RHAZ(real * 2**(31-s))."""
    r, s = Fraction(real), 0
    while r >= Fraction(2) ** s:
        s += 1
    while r < Fraction(2) ** (s - 1):
        s -= 1
    m = rnd(r * Fraction(2) ** (31 - s), "rhaz")
    if m == 1 << 31:
        m, s = 1 << 30, s + 1
    if s < -31:
        return 0, 0
    if cap and s > 30:
        return I32_MAX, 30
    return m, s


def tflite_formula(acc: int, real: float, mode: str) -> int:
    m0, s = q31(real, mode == "single")
    x = wrap32(acc)
    if mode == "single":
        return wrap32(rnd(Fraction(x * m0, 1 << (31 - s)), "rhu"))
    xs = wrap32(x * 2 ** max(s, 0))
    if xs == m0 == I32_MIN and mode == "double":
        hi = I32_MAX
    else:
        hi = wrap32(rnd(Fraction(xs * m0, 1 << 31), "rhu"))
    return rnd(Fraction(hi, 2 ** max(-s, 0)), "rhaz")


def ort_formula(acc: int, a, b, o, zp: int, lo: int, hi: int) -> int:
    f32 = np.float32
    m = f32(f32(f32(a) * f32(b)) / f32(o))
    v = min(max(f32(acc) * m, f32(lo - zp)), f32(hi - zp))
    return int(np.rint(v)) + zp


def make_rq(a, b, o, zp=0, lo=-128, hi=127, out_type=INT8, name="y"):
    return Requant(np.asarray(a, np.float32), np.asarray(b, np.float32), np.asarray(o, np.float32),
                   zp, lo, hi, out_type, name)


def run_target(target, rq, acc, dtype=np.int8):
    r = get_target(target).requantizer(rq, acc.shape[1], "node0")
    out = np.empty(acc.shape, dtype)
    r.apply(acc, out)
    return out.astype(np.int64)


# ----------------------------------------------------------------------------- strategies

scales = st.one_of(st.floats(float(np.float32(1e-4)), 1.0, width=32), st.sampled_from([0.5, 0.25, 1.0, 2.0 ** -7, 0.75, 0.1]))


@st.composite
def cases(draw, pow2=False):
    p, c, q = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    vals = draw(st.lists(st.one_of(st.sampled_from(EDGE_ACC), st.integers(I32_MIN, I32_MAX),
                                   st.integers(-5000, 5000)), min_size=p * c * q, max_size=p * c * q))
    acc = np.array(vals, np.int64).reshape(p, c, q).astype(draw(st.sampled_from([np.int32, np.int64])))
    if pow2:
        a = 2.0 ** -draw(st.integers(0, 10))
        b = [2.0 ** -draw(st.integers(-2, 12)) for _ in range(c)]
        o = 2.0 ** -draw(st.integers(0, 8))
    else:
        a, o = draw(scales), draw(scales)
        b = [draw(scales) for _ in range(c)]
    per_channel = draw(st.booleans()) or c > 1
    b = np.array(b if per_channel else b[:1], np.float32)
    signed = draw(st.booleans())
    qmin, qmax = (-128, 127) if signed else (0, 255)
    lo, hi = draw(st.sampled_from([(qmin, qmax), (qmin + 1, qmax), (max(qmin, 0), min(qmax, 6))]))
    zp = draw(st.sampled_from([lo, hi, (lo + hi) // 2]))
    rq = make_rq(np.float32(a), b, np.float32(o), zp, lo, hi, INT8 if signed else UINT8)
    return acc, rq, (np.int8 if signed else np.uint8)


def expected(acc, rq, per_element):
    bc = np.broadcast_to(rq.b_scale.reshape(-1), (acc.shape[1],))
    want = np.empty(acc.shape, np.int64)
    for (p, c, q), v in np.ndenumerate(acc):
        want[p, c, q] = per_element(int(v), bc[c])
    return want


# ----------------------------------------------------------------------------- each target vs its formula

@pytest.mark.parametrize("target,mode", [("tflite", "double"), ("tflite-single", "single"), ("cmsis-nn", "cmsis")])
@settings(max_examples=80, deadline=None)
@given(case=cases())
def test_fixedpoint_targets_match_formula(target, mode, case):
    acc, rq, dtype = case

    def one(v, b):
        real = float(rq.a_scale) * float(b) / float(rq.out_scale)
        return min(max(wrap32(tflite_formula(v, real, mode) + rq.out_zp), rq.lo), rq.hi)
    assert np.array_equal(run_target(target, rq, acc, dtype), expected(acc, rq, one))


@pytest.mark.parametrize("target,rounding", [("pow2", "rhu"), ("pow2-floor", "floor"), ("pow2-rhu", "rhu"),
                                             ("pow2-rne", "rne"), ("pow2-rhaz", "rhaz")])
@settings(max_examples=60, deadline=None)
@given(case=cases(pow2=True))
def test_pow2_targets_match_formula(target, rounding, case):
    acc, rq, dtype = case

    def one(v, b):
        real = Fraction(float(rq.a_scale)) * Fraction(float(b)) / Fraction(float(rq.out_scale))
        return min(max(rnd(v * real, rounding) + rq.out_zp, rq.lo), rq.hi)
    assert np.array_equal(run_target(target, rq, acc, dtype), expected(acc, rq, one))


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_ort_target_matches_formula(case):
    acc, rq, dtype = case
    one = lambda v, b: ort_formula(v, rq.a_scale, b, rq.out_scale, rq.out_zp, rq.lo, rq.hi)  # noqa: E731
    assert np.array_equal(run_target("ort", rq, acc, dtype), expected(acc, rq, one))


# ----------------------------------------------------------------------------- where targets disagree

def one_value(target, real_scale_b, acc, zp=0):
    rq = make_rq(1.0, real_scale_b, 1.0, zp)
    return int(run_target(target, rq, np.array([[[acc]]], np.int32))[0, 0, 0])


def test_ort_and_tflite_disagree_on_a_tie():
    # M = 0.5, acc = -7: exact -3.5. ort: rint half-even -> -4. tflite: SRDHM(-7, 2**30) is RHU -> -3,
    # then RoundingDivideByPOT(-3, 0) = -3.
    assert one_value("ort", 0.5, -7) == -4
    assert one_value("tflite", 0.5, -7) == -3


def test_tflite_and_tflite_single_disagree_by_double_rounding():
    # M = 0.25 (M0 = 2**30, shift = -1), acc = 1: exact 0.25.
    # double: SRDHM = RHU(1 * 2**30 / 2**31 = 0.5) = 1, then RHAZ(1 / 2) = 1.
    # single: (1 * 2**30 + 2**31) >> 32 = floor(0.75) = 0.
    assert one_value("tflite", 0.25, 1) == 1
    assert one_value("tflite-single", 0.25, 1) == 0


def test_tflite_and_cmsis_nn_disagree_only_at_int32_min_squared():
    from kernels.fixedpoint import requant_fixedpoint
    # m0 = acc = INT32_MIN, shift 0: gemmlowp saturates to INT32_MAX; CMSIS-NN computes
    # (2**62 + 2**30) >> 31 = 2**31, which wraps to INT32_MIN. QuantizeMultiplier never yields a
    # negative m0, so through the targets the two agree (next test).
    acc = np.array([[[I32_MIN]]], np.int32)
    got = {}
    for mode in ("double", "cmsis"):
        out = np.empty((1, 1, 1), np.int32)
        requant_fixedpoint(acc, [I32_MIN], [0], 0, I32_MIN, I32_MAX, mode, out)
        got[mode] = int(out[0, 0, 0])
    assert got == {"double": I32_MAX, "cmsis": I32_MIN}


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_tflite_and_cmsis_nn_agree_for_prepared_multipliers(case):
    acc, rq, dtype = case
    assert np.array_equal(run_target("tflite", rq, acc, dtype), run_target("cmsis-nn", rq, acc, dtype))


def test_pow2_floor_and_rhu_disagree_on_halves():
    # M = 2**-2: acc = 6 -> 1.5 (floor 1, rhu 2); acc = -6 -> -1.5 (floor -2, rhu -1)
    assert [one_value("pow2-floor", 0.25, a) for a in (6, -6)] == [1, -2]
    assert [one_value("pow2-rhu", 0.25, a) for a in (6, -6)] == [2, -1]


def test_tflite_left_shift_wraps_in_int32():
    # M = 2**29 (M0 = 2**30, shift 30), acc = 3: (3 << 30) wraps to -2**30, SRDHM -> -2**29,
    # + zp 0 -> clamp -128; the exact product 3 * 2**29 would clamp to 127.
    assert one_value("tflite", 2.0 ** 29, 3) == -128


# ----------------------------------------------------------------------------- parameters and errors

def test_params_and_per_channel():
    rq = make_rq(0.5, np.array([0.5, 0.75], np.float32), 1.0, zp=3)
    p = get_target("tflite").requantizer(rq, 2, "n").params
    assert p["multiplier"].tolist() == [1 << 30, 3 << 29] and p["shift"].tolist() == [-1, -1]
    assert (p["zero_point"], p["lo"], p["hi"]) == (3, -128, 127)
    p = get_target("pow2").requantizer(make_rq(0.5, np.array([0.5, 4.0], np.float32), 1.0), 2, "n").params
    assert p["right_shift"].tolist() == [2, -1] and p["rounding"] == "rhu"


def test_non_pow2_scale_names_tensor():
    rq = make_rq(0.5, 0.3, 1.0, name="conv1_out")
    with pytest.raises(QuantParamError, match=r"conv1_out.*0\.15"):
        get_target("pow2").requantizer(rq, 1, "conv1")


def test_pow2_snap_warns_and_rounds_in_log2():
    rq = make_rq(1.0, np.array([0.3, 0.25, 0.7], np.float32), 1.0, name="t")
    with pytest.warns(UserWarning, match=r"t.*snapped"):
        p = Pow2Target(snap=True).requantizer(rq, 3, "n").params
    # log2(0.3) = -1.74 -> 2**-2; log2(0.7) = -0.51 -> 2**-1
    assert p["right_shift"].tolist() == [2, 2, 1]


def test_fixedpoint_multiplier_too_large_names_tensor():
    with pytest.raises(QuantParamError, match="big_out"):
        get_target("tflite").requantizer(make_rq(2.0 ** 20, 2.0 ** 12, 1.0, name="big_out"), 1, "n")
    # single rounding caps it instead: shift 30, m0 = 2**31 - 1
    p = get_target("tflite-single").requantizer(make_rq(2.0 ** 20, 2.0 ** 12, 1.0), 1, "n").params
    assert (int(p["multiplier"][0]), int(p["shift"][0])) == (I32_MAX, 30)


def test_per_channel_length_mismatch():
    with pytest.raises(QuantParamError, match="y"):
        get_target("tflite").requantizer(make_rq(1.0, np.array([0.5, 0.5, 0.5], np.float32), 1.0), 2, "n")


# ----------------------------------------------------------------------------- user targets (TOML)

@pytest.mark.parametrize("example,builtin,pow2", [("tflite.toml", "tflite", False),
                                                  ("tflite-single.toml", "tflite-single", False),
                                                  ("cmsis-nn.toml", "cmsis-nn", False),
                                                  ("pow2-rhu.toml", "pow2-rhu", True)])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_example_files_reproduce_builtins(example, builtin, pow2, data):
    acc, rq, dtype = data.draw(cases(pow2=pow2))
    if pow2:   # the built-in pow2 works on exact int64; keep left shifts inside it
        acc = np.clip(acc.astype(np.int64), -(1 << 28), 1 << 28)
    user = load_target_file(EXAMPLES / example)
    assert np.array_equal(run_target(user, rq, acc, dtype), run_target(builtin, rq, acc, dtype))


def test_example_tflite_single_reproduces_the_cap():
    rq = make_rq(2.0 ** 20, 2.0 ** 12, 1.0, zp=0, lo=I32_MIN, hi=I32_MAX, out_type=IntType(32, True))
    acc = np.array([[[1, -1, 3, 1000, I32_MAX]]], np.int32)
    user = load_target_file(EXAMPLES / "tflite-single.toml")
    assert np.array_equal(run_target(user, rq, acc, np.int32), run_target("tflite-single", rq, acc, np.int32))


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_q15_example_matches_formula(case):
    acc, rq, dtype = case
    bc = np.broadcast_to(rq.b_scale.reshape(-1), (acc.shape[1],))
    if np.unique(bc).size > 1:   # per-tensor only
        with pytest.raises(QuantParamError, match="per-channel"):
            load_target_file(EXAMPLES / "q15-dsp.toml").requantizer(rq, acc.shape[1], "n")
        return

    def one(v, b):
        real = float(rq.a_scale) * float(b) / float(rq.out_scale)
        r, s = Fraction(real), 0
        while r >= Fraction(2) ** s:
            s += 1
        while r < Fraction(2) ** (s - 1):
            s -= 1
        m = rnd(r * Fraction(2) ** (15 - s), "rne")
        if m == 1 << 15:
            m, s = 1 << 14, s + 1
        if s < -31:
            m, s = rnd(r * Fraction(2) ** (15 + 31), "rne"), -31
        a = min(max(v, -(1 << 23)), (1 << 23) - 1)          # 24-bit saturating accumulator
        y = wrap32(rnd(Fraction(a * m, 2 ** (15 - s)), "rhaz"))
        return min(max(wrap32(y + rq.out_zp), rq.lo), rq.hi)
    user = load_target_file(EXAMPLES / "q15-dsp.toml")
    assert np.array_equal(run_target(user, rq, acc, dtype), expected(acc, rq, one))


def write(tmp_path, text):
    p = tmp_path / "t.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,match", [
    ("[accumulator]\nbitz = 32\n", "unknown key"),
    ("[accumulator]\noverflow = 'clip'\n", "overflow"),
    ("[multiplier]\nbits = 40\n", "bits"),
    ("[shift]\nmin = 3\nmax = 1\n", "min"),
    ("[requant]\nbias = 'after'\n", "bias"),
    ("[requant]\nstages = 'double'\n[multiplier]\nbits = 15\n", "double"),
    ("[accumulator\n", "cannot read"),
    ("[extra]\n", "unknown section"),
])
def test_bad_target_files(tmp_path, text, match):
    with pytest.raises(QuantParamError, match=match):
        load_target_file(write(tmp_path, text))


def test_user_shift_out_of_range_names_layer(tmp_path):
    t = load_target_file(write(tmp_path, "[shift]\nmin = -10\nmax = 0\nbelow_min = 'error'\n"))
    with pytest.raises(QuantParamError, match="layer7_out"):
        t.requantizer(make_rq(2.0 ** -20, 1.0, 1.0, name="layer7_out"), 1, "layer7")
    with pytest.raises(QuantParamError, match="layer7_out"):
        t.requantizer(make_rq(4.0, 1.0, 1.0, name="layer7_out"), 1, "layer7")


def test_user_pow2_unrepresentable(tmp_path):
    base = "[multiplier]\nbits = 0\nunrepresentable = '{}'\n[shift]\nmin = -40\nmax = 10\n[requant]\nwrap_bits = 0\n"
    rq = make_rq(1.0, 0.3, 1.0, name="fc_out")
    with pytest.raises(QuantParamError, match="fc_out.*not a power of two"):
        load_target_file(write(tmp_path, base.format("error"))).requantizer(rq, 1, "fc")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = load_target_file(write(tmp_path, base.format("saturate"))).requantizer(rq, 1, "fc").params
    assert any("fc_out" in str(x.message) for x in w)
    assert p["right_shift"].tolist() == [2]


def test_user_accumulator_overflow_modes(tmp_path):
    rq = make_rq(1.0, 1.0, 1.0, lo=I32_MIN, hi=I32_MAX, out_type=IntType(32, True))
    acc = np.array([[[200, -200, 100]]], np.int32)
    res = {}
    for mode in ("wrap", "saturate"):
        t = load_target_file(write(tmp_path, f"[accumulator]\nbits = 8\noverflow = '{mode}'\n"))
        res[mode] = run_target(t, rq, acc, np.int32).ravel().tolist()
    assert res == {"wrap": [200 - 256, -200 + 256, 100], "saturate": [127, -128, 100]}
    t = load_target_file(write(tmp_path, "[accumulator]\nbits = 8\noverflow = 'error'\n"))
    with pytest.raises(AccumulatorOverflow, match="y"):
        run_target(t, rq, acc, np.int32)
