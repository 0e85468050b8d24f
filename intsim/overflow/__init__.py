"""Accumulator overflow: static bounds per layer, observed ranges, the cost of a narrow
accumulator (analysis), and its HTML report (report)."""
from __future__ import annotations

from .analysis import (EXACT_REFERENCE, LayerParams, a2q_bits, a2q_channel_bits, analyze,
                       conv_pad_masks, datatype_range, layer_params, observe, plot_sweep, signed_bits,
                       simulate, split_labels, static_bounds, sweep, sweep_table, weight_range)

__all__ = ["EXACT_REFERENCE", "LayerParams", "a2q_bits", "a2q_channel_bits", "analyze",
           "conv_pad_masks", "datatype_range", "layer_params", "observe", "plot_sweep", "signed_bits",
           "simulate", "split_labels", "static_bounds", "sweep", "sweep_table", "weight_range"]
