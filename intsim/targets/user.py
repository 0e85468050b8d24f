"""User-defined fixed-point targets described by a TOML file (DESIGN §3, last paragraph).

    target = load_target_file("my_npu.toml")      # a Target; intsim.load(..., target=target)

The file (every key is listed; see intsim/targets/examples/*.toml):

    name = "my-npu"
    [accumulator]   bits = 32          # 2..48; width of the accumulator handed to requant
                    overflow = "wrap"  # wrap | saturate | error (error: AccumulatorOverflow)
    [multiplier]    bits = 31          # B: m in [2**(B-1), 2**B); 0 = shift only (power of two)
                    rounding = "rhaz"  # rounding of frac * 2**B: rhaz | rne | rhu | floor | trunc
                    per_channel = true
                    unrepresentable = "error"  # B = 0 only: error | saturate (snap in log2, warn)
    [shift]         min = -31          # the exponent range: real ~= m * 2**(shift - B)
                    max = 30
                    below_min = "flush"   # flush (m = shift = 0, TFLite) | saturate (shift = min,
                                          # m = round(real * 2**(B - min)), a "denormal") | error
                    above_max = "error"   # error | saturate (shift = max, m = 2**B - 1)
    [requant]       stages = "single"     # single | double
                    rounding = "rhu"      # single: rounding of acc * m / 2**(B - shift)
                    saturate_high_mul = true  # double: gemmlowp (true) or CMSIS-NN (false)
                    wrap_bits = 32        # single: wrap the scaled value and the + zp at this
                                          # width (0: exact)
                    bias = "before"       # before (acc includes the bias); "after" not supported
    [ops]           add = "refuse"        # the other integer ops' rules (targets.rules); an op
                    mul = "refuse"        # left at "refuse" is refused by name at prepare:
                    concat = "refuse"     #   requantize   exact accumulator + this file's requant
                    avgpool = "refuse"    #   tflite-add   TFLite's fixed-point ADD (stages double,
                    global_avgpool = "refuse"  #             or single with 31-bit rhu multipliers)
                    lut = "refuse"        #   raw-average  TFLite's average of codes (pools)
                    quantize = "rne"      #   requantize-fold-zp  add/mul: zy joins the sum
                                          #                before a 2**-n multiplier's rounding
                                          #   divide       exact pool divider, [requant] rounding
                                          #   same-quant   concat of equal quantization only
                                          #   onnxruntime  onnxruntime's float formulas
                                          #   quantize: rne (ONNX) | rhaz (TFLite)

Prepare: real[c] = double(a_scale) * double(b_scale[c]) / double(out_scale); frac, e =
frexp(real[c]); m = round(frac * 2**B), renormalized when it reaches 2**B; shift = e, then
the range rules above.

Run:
    a = reduce(acc, accumulator.bits, accumulator.overflow)
    single: v = round_{B - shift}(a * m)   (exact int64, kernels.fixedpoint.requant_multiply_shift)
            y = clamp(wrapW(wrapW(v) + zp), lo, hi)           (W = wrap_bits, 0 = no wrap)
    double: B must be 31, -31 <= shift <= 30, accumulator bits <= 32:
            y = requant_fixedpoint(a, m, shift, zp, lo, hi, "double" | "cmsis")
"""
from __future__ import annotations

import math
import tomllib
import warnings
from pathlib import Path
from types import MappingProxyType

import numpy as np

from kernels.fixedpoint import (ROUNDINGS, requant_fixedpoint, requant_fixedpoint_ref, requant_multiply_shift,
                                requant_multiply_shift_ref)

from ..errors import AccumulatorOverflow, QuantParamError
from ..ir import Requant
from .base import Requantizer, Target
from .rules import AccRequant, DivideRound, OrtArith, QuantizeRound, RawAverage, SameQuant, TfliteAdd
from .tflite import check_real, real_multiplier

SCHEMA = {
    "accumulator": {"bits": 32, "overflow": "wrap"},
    "multiplier": {"bits": 31, "rounding": "rhaz", "per_channel": True, "unrepresentable": "error"},
    "shift": {"min": -31, "max": 30, "below_min": "flush", "above_max": "error"},
    "requant": {"stages": "single", "rounding": "rhu", "saturate_high_mul": True, "wrap_bits": 32,
                "bias": "before"},
    "ops": {"add": "refuse", "mul": "refuse", "concat": "refuse", "avgpool": "refuse",
            "global_avgpool": "refuse", "lut": "refuse", "quantize": "rne"},
}
CHOICES = {
    ("accumulator", "overflow"): ("wrap", "saturate", "error"),
    ("multiplier", "rounding"): tuple(ROUNDINGS),
    ("multiplier", "unrepresentable"): ("error", "saturate"),
    ("shift", "below_min"): ("flush", "saturate", "error"),
    ("shift", "above_max"): ("error", "saturate"),
    ("requant", "stages"): ("single", "double"),
    ("requant", "rounding"): tuple(ROUNDINGS),
    ("requant", "bias"): ("before",),
    ("ops", "add"): ("refuse", "requantize", "requantize-fold-zp", "tflite-add", "onnxruntime"),
    ("ops", "mul"): ("refuse", "requantize", "requantize-fold-zp", "onnxruntime"),
    ("ops", "concat"): ("refuse", "requantize", "same-quant", "onnxruntime"),
    ("ops", "avgpool"): ("refuse", "requantize", "raw-average", "divide", "onnxruntime"),
    ("ops", "global_avgpool"): ("refuse", "requantize", "raw-average", "divide", "onnxruntime"),
    ("ops", "lut"): ("refuse", "onnxruntime"),
    ("ops", "quantize"): ("rne", "rhaz"),
}
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


# ----------------------------------------------------------------------------- the file

def _fail(src: str, msg: str):
    raise QuantParamError(f"target file {src}: {msg}")


def _section(src: str, data: dict, sec: str) -> dict:
    given = data.get(sec, {})
    if not isinstance(given, dict):
        _fail(src, f"[{sec}] must be a table")
    unknown = set(given) - set(SCHEMA[sec])
    if unknown:
        _fail(src, f"unknown key(s) {sorted(unknown)} in [{sec}] (known: {sorted(SCHEMA[sec])})")
    out = dict(SCHEMA[sec])
    for key, default in SCHEMA[sec].items():
        if key not in given:
            continue
        val = given[key]
        if type(val) is not type(default):
            _fail(src, f"[{sec}] {key} must be a {type(default).__name__}, got {val!r}")
        if (sec, key) in CHOICES and val not in CHOICES[(sec, key)]:
            _fail(src, f"[{sec}] {key} = {val!r} is not one of {CHOICES[(sec, key)]}")
        out[key] = val
    return out


def parse_config(data: dict, src: str = "<dict>") -> dict:
    """Validate a decoded TOML document; returns {section: {key: value}} with defaults filled."""
    unknown = set(data) - set(SCHEMA) - {"name", "description"}
    if unknown:
        _fail(src, f"unknown section(s) {sorted(unknown)}")
    cfg = {sec: _section(src, data, sec) for sec in SCHEMA}
    cfg["name"] = str(data.get("name", Path(src).stem))
    _check_ranges(src, cfg)
    return cfg


def _check_ranges(src: str, cfg: dict) -> None:
    acc, mul, sh, rq = cfg["accumulator"], cfg["multiplier"], cfg["shift"], cfg["requant"]
    if not 2 <= acc["bits"] <= 48:
        _fail(src, f"[accumulator] bits = {acc['bits']} outside 2..48")
    if not 0 <= mul["bits"] <= 31:
        _fail(src, f"[multiplier] bits = {mul['bits']} outside 0..31")
    if sh["min"] > sh["max"]:
        _fail(src, f"[shift] min {sh['min']} > max {sh['max']}")
    right = (mul["bits"] - sh["max"], mul["bits"] - sh["min"])
    if right[0] < -31 or right[1] > 62:
        _fail(src, f"[shift] min..max gives right shifts {right[0]}..{right[1]}, outside -31..62")
    if cfg["ops"]["add"] == "tflite-add" and rq["stages"] == "single" and (mul["bits"] != 31 or rq["rounding"] != "rhu"):
        _fail(src, "[ops] add = 'tflite-add' needs [requant] stages = 'double', or single with multiplier "
                   "bits = 31 and rounding 'rhu'")
    if rq["wrap_bits"] not in (0, 8, 16, 32):
        _fail(src, f"[requant] wrap_bits = {rq['wrap_bits']} is not 0, 8, 16 or 32")
    if rq["stages"] == "double" and (mul["bits"] != 31 or sh["min"] < -31 or sh["max"] > 30
                                     or acc["bits"] > 32):
        _fail(src, "[requant] stages = 'double' needs multiplier bits = 31, shift within -31..30 "
                   "and accumulator bits <= 32")
    left = max(0, sh["max"] - mul["bits"])
    if rq["stages"] == "single" and acc["bits"] - 1 + mul["bits"] + left > 62:
        _fail(src, f"|acc * m * 2**{left}| may reach 2**{acc['bits'] - 1 + mul['bits'] + left}: "
                   "int64 arithmetic would overflow (lower the bits or shift max)")


def load_target_file(path) -> "UserTarget":
    """Read a target TOML file (tomllib) and return its Target. Bad files raise QuantParamError."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise QuantParamError(f"target file {p}: cannot read: {e}") from None
    return UserTarget(parse_config(data, str(p)))


# ----------------------------------------------------------------------------- prepare

def _round_real(x: float, rounding: str) -> int:
    """Round a non-negative double to an int (exact: floor and the tie test are exact)."""
    f = math.floor(x)
    rest = x - f
    up = {"floor": False, "trunc": False, "rhu": rest >= 0.5, "rhaz": rest >= 0.5,
          "rne": rest > 0.5 or (rest == 0.5 and f % 2 == 1)}[rounding]
    return int(f) + int(up)


def quantize_user(real: float, cfg: dict, where: str) -> tuple:
    """(m, shift) for one real multiplier > 0 under cfg's multiplier and shift rules."""
    mul, sh = cfg["multiplier"], cfg["shift"]
    bits = mul["bits"]
    frac, shift = math.frexp(real)
    m = _round_real(math.ldexp(frac, bits), mul["rounding"])
    if m == 1 << bits:
        m, shift = m >> 1, shift + 1
    if shift > sh["max"]:
        if sh["above_max"] == "error":
            raise QuantParamError(f"{where}: multiplier {real!r} needs shift {shift} > max {sh['max']}")
        return (1 << bits) - 1, sh["max"]
    if shift < sh["min"]:
        if sh["below_min"] == "error":
            raise QuantParamError(f"{where}: multiplier {real!r} needs shift {shift} < min {sh['min']}")
        if sh["below_min"] == "flush":
            return 0, 0
        return _round_real(math.ldexp(real, bits - sh["min"]), mul["rounding"]), sh["min"]
    return m, shift


def quantize_pow2(real: float, cfg: dict, where: str, snapped: list) -> tuple:
    """(1, shift) with real == 2**shift; snapped in log2 when the file says saturate."""
    frac, e = math.frexp(real)
    if frac != 0.5:
        if cfg["multiplier"]["unrepresentable"] == "error":
            raise QuantParamError(f"{where}: multiplier {real!r} is not a power of two")
        shift = int(np.rint(np.log2(real)))
        snapped.append((real, shift))
    else:
        shift = e - 1
    sh = cfg["shift"]
    if not sh["min"] <= shift <= sh["max"]:
        if "error" in (sh["below_min"] if shift < sh["min"] else sh["above_max"]):
            raise QuantParamError(f"{where}: power-of-two shift {shift} outside {sh['min']}..{sh['max']}")
        shift = min(max(shift, sh["min"]), sh["max"])
    return 1, shift


# ----------------------------------------------------------------------------- run

def reduce_accumulator(acc: np.ndarray, bits: int, overflow: str, where: str) -> np.ndarray:
    """acc as int64 brought into a `bits`-bit two's-complement register (wrap/saturate/error)."""
    a = acc.astype(np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if overflow == "saturate":
        return np.clip(a, lo, hi)
    if overflow == "wrap":
        return ((a - lo) & ((1 << bits) - 1)) + lo
    if a.size and (a.min() < lo or a.max() > hi):
        raise AccumulatorOverflow(f"{where}: accumulator [{a.min()}, {a.max()}] leaves int{bits}")
    return a


def wrap_bits(v: np.ndarray, bits: int) -> np.ndarray:
    if bits == 0:
        return v
    lo = -(1 << (bits - 1))
    return ((v - lo) & ((1 << bits) - 1)) + lo


class UserRequantizer(Requantizer):
    def apply(self, acc, out):
        self._apply(acc, out, requant_fixedpoint, requant_multiply_shift)

    def apply_reference(self, acc, out):
        self._apply(acc, out, requant_fixedpoint_ref, requant_multiply_shift_ref)

    def _apply(self, acc, out, fixedpoint, multiply_shift):
        p = self.params
        cfg = p["config"]
        a = reduce_accumulator(acc, cfg["accumulator"]["bits"], cfg["accumulator"]["overflow"], p["where"])
        if cfg["requant"]["stages"] == "double":
            mode = "double" if cfg["requant"]["saturate_high_mul"] else "cmsis"
            fixedpoint(a, p["multiplier"], p["shift"], p["zero_point"], p["lo"], p["hi"], mode, out)
            return
        v = np.empty(a.shape, np.int64)
        multiply_shift(a, p["multiplier"], p["right_shift"], cfg["requant"]["rounding"], 0,
                               INT64_MIN, INT64_MAX, v)
        w = cfg["requant"]["wrap_bits"]
        y = wrap_bits(wrap_bits(v, w) + p["zero_point"], w)
        out[...] = np.clip(y, p["lo"], p["hi"]).astype(out.dtype)


def op_rules(cfg: dict) -> dict:
    """{IR op: rule record} from the file's [ops] table; "refuse" leaves the op out."""
    rq = cfg["requant"]
    mode = "single" if rq["stages"] == "single" else ("double" if rq["saturate_high_mul"] else "cmsis")
    records = {"requantize": AccRequant(), "requantize-fold-zp": AccRequant(fold_zp=True), "tflite-add": TfliteAdd(mode), "raw-average": RawAverage(),
               "divide": DivideRound(rq["rounding"]), "same-quant": SameQuant(), "onnxruntime": OrtArith()}
    rules = {"conv": AccRequant(), "matmul": AccRequant(), "quantize": QuantizeRound(cfg["ops"]["quantize"])}
    for op, choice in cfg["ops"].items():
        if op != "quantize" and choice != "refuse":
            rules[op] = records[choice]
    return rules


class UserTarget(Target):
    """A target built from a parsed TOML configuration (see the module docstring)."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.name = cfg["name"]
        self.rules = MappingProxyType(op_rules(cfg))

    def requantizer(self, rq: Requant, channels: int, node: str) -> Requantizer:
        where = f"target {self.name}: tensor '{rq.out_name}' (node '{node}')"
        real = real_multiplier(rq, channels)
        check_real(rq, real)
        if not self.cfg["multiplier"]["per_channel"] and np.unique(real).size > 1:
            raise QuantParamError(f"{where}: per-channel multipliers are not supported by this target")
        m, shift = self._quantize(real, where)
        bits = self.cfg["multiplier"]["bits"]
        return UserRequantizer(self.name, {
            "config": self.cfg, "where": where, "real_multiplier": real,
            "multiplier": m, "shift": shift, "right_shift": bits - shift,
            "zero_point": int(rq.out_zp), "lo": int(rq.lo), "hi": int(rq.hi)})

    def _quantize(self, real: np.ndarray, where: str) -> tuple:
        snapped: list = []
        if self.cfg["multiplier"]["bits"] == 0:
            pairs = [quantize_pow2(float(r), self.cfg, where, snapped) for r in real]
        else:
            pairs = [quantize_user(float(r), self.cfg, where) for r in real]
        if snapped:
            warnings.warn(f"{where}: snapped multipliers to powers of two (multiplier, shift): {snapped[:8]}",
                          stacklevel=3)
        m = np.array([p[0] for p in pairs], np.int64)
        s = np.array([p[1] for p in pairs], np.int64)
        return m, s
