"""The target seam: how a deployment target computes every integer op.

A `Target` is chosen by name (`intsim.load(..., target="ort")`, see `registry.get_target`).
At prepare time each integer step asks it once:

    target.rule(node)            -> a typed record of `rules.py` (or TargetRefusal, by name)
    target.requantizer(rq, C, n) -> a `Requantizer` (conv/matmul, and every AccRequant rule)

and at run time only `Requantizer.apply` and kernels run:

    acc (int32/int64, laid out (outer, C, inner))  --apply-->  out (narrow ints, same layout)

`Requantizer.params` holds the parameters the target derived (multiplier, shift, zero point,
clamp) for reports and golden-vector dumps; `fused_form()` is what a fused SIMD epilogue may
use instead of `apply` (None: the target has no fused form, the step calls `apply`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..ir import IntType, QParams, Requant
from .activation import tflite_range
from .rules import TargetRefusal


@dataclass
class Requantizer:
    """A node's requantization, its parameters fixed at prepare. A subclass names its kernel and
    that kernel's NumPy int64 twin (`kernel`, `twin`: fn(acc, *args, out)) and `arg_names`, the
    `params` keys passed between acc and out, in order; or overrides apply and apply_reference."""
    target: str
    params: dict = field(default_factory=dict)
    kernel = twin = None
    arg_names = ()

    def __post_init__(self):
        self.args = tuple(self.params[k] for k in self.arg_names)

    def apply(self, acc: np.ndarray, out: np.ndarray) -> None:
        self.kernel(acc, *self.args, out)

    def apply_reference(self, acc: np.ndarray, out: np.ndarray) -> None:
        """`apply` through the NumPy int64 twins of its kernels (kernels="reference")."""
        self.twin(acc, *self.args, out)

    def fused_form(self):
        """(float32 multiplier (C,), zp, lo, hi) when a fused engine epilogue computes exactly
        what `apply` does (onnxruntime's float requant), else None."""
        return None


class Target:
    """Base class. A subclass sets `name`, `rules` ({IR op: rule record}) and `requantizer`.
    An op missing from `rules` is refused by name at prepare."""

    name = "base"
    rules = MappingProxyType({})
    # what computes float islands: "reference" (the ONNX reference evaluator) or "onnxruntime"
    # (its own CPU kernels and float fusions, one session per island: steps/ort_island.py)
    float_engine = "reference"
    # which QDQ patterns become integer nodes (passes/qdq_policy.py): "onnxruntime" (what its
    # optimizer fuses) or "integer" (what the format means on an all-integer accelerator)
    qdq_fusion = "onnxruntime"

    def rule(self, node):
        """The rule record for `node` (an IR node), or TargetRefusal naming the op and node."""
        try:
            return self.rules[node.op]
        except KeyError:
            raise TargetRefusal(self.name, node) from None

    def requantizer(self, rq: Requant, channels: int, node: str) -> Requantizer:
        raise NotImplementedError

    def rule_requantizer(self, rule, rq: Requant, channels: int, node) -> Requantizer:
        """The requantizer a rule other than AccRequant names (rules.DoubleRequant); a target
        that lists such a rule implements it."""
        raise TargetRefusal(self.name, node, f"its rule {type(rule).__name__} has no requantizer")

    def bias_rule(self, node):
        """The rule (rules.BiasShift) that puts a bias with its own scale onto the accumulator
        grid; a target without one refuses the node by name."""
        raise TargetRefusal(self.name, node, "a bias with its own scale (not x_scale*w_scale) has no rule here")

    def annotate(self, graph):
        """The graph with the attributes this target's `rule` reads that depend on the graph's
        constants, decided once at prepare (passes.fused_activation.prepare_for_target); none here."""
        return graph

    def fused_activation_range(self, node, bounds, qp: QParams, t: IntType) -> tuple:
        """(lo, hi) in output codes of `node`'s fused activation, given as its float bounds
        (targets.activation): what the TFLite format defines, CalculateActivationRangeQuantized
        (activation.tflite_range); a target whose kernels quantize the bounds otherwise overrides."""
        return tflite_range(bounds, qp, t)

    def accumulation(self, a_dtype: np.dtype, b_dtype: np.dtype) -> str:
        """The accumulation model this target's hardware uses for a (a_dtype x b_dtype)
        GEMM/conv: "exact" (int32 sums) unless the target says otherwise."""
        return "exact"
