"""Element-wise max of a few equally spaced spans of integers, by LLVM vector instructions.

    dst[d0 + i] = max_{0 <= t < taps} src[s0 + t*step + i]        for 0 <= i < lanes

one call per block of `lanes` integers (a 32- or 16-byte vector: 32/16 uint8/int8, 16/8
16-bit), signed or unsigned compare by the arrays' dtype. Exact: only comparisons. Numba leaves
the max over short spans scalar (a 32-channel channels-last MaxPool window is 32 bytes a tap,
below its vector loops' trip counts), so the channels-last pool calls these per window instead.
Written in target-neutral LLVM vector IR (icmp + select; LLVM picks pmaxub/pmaxsb and the like):
no CPU feature beyond the baseline is assumed. Nothing is bounds-checked: callers pass spans
inside both arrays and taps >= 1.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I64 = ir.IntType(64)


def _tap_max(nbytes):
    """The intrinsic for blocks of nbytes bytes (see the module doc)."""

    @intrinsic
    def tap_max(typingctx, src, s0, step, taps, dst, d0):
        sig = types.void(src, types.int64, types.int64, types.int64, dst, types.int64)
        bits = src.dtype.bitwidth
        signed = src.dtype.signed
        vty = ir.VectorType(ir.IntType(bits), nbytes * 8 // bits)

        def codegen(context, builder, signature, args):
            sp = context.make_array(signature.args[0])(context, builder, args[0]).data
            dp = context.make_array(signature.args[4])(context, builder, args[4]).data
            s0_, step_, taps_, d0_ = args[1], args[2], args[3], args[5]

            def load(ptr, index):
                return builder.load(builder.bitcast(builder.gep(ptr, [index]), vty.as_pointer()), align=1)

            first = load(sp, s0_)
            entry, fn = builder.block, builder.function
            loop, done = fn.append_basic_block("tapmax_loop"), fn.append_basic_block("tapmax_done")
            builder.cbranch(builder.icmp_signed(">", taps_, ir.Constant(_I64, 1)), loop, done)
            builder.position_at_end(loop)
            t = builder.phi(_I64, "t")
            acc = builder.phi(vty, "acc")
            t.add_incoming(ir.Constant(_I64, 1), entry)
            acc.add_incoming(first, entry)
            v = load(sp, builder.add(s0_, builder.mul(t, step_)))
            gt = builder.icmp_signed(">", v, acc) if signed else builder.icmp_unsigned(">", v, acc)
            nxt_acc = builder.select(gt, v, acc)
            nxt = builder.add(t, ir.Constant(_I64, 1))
            t.add_incoming(nxt, builder.block)
            acc.add_incoming(nxt_acc, builder.block)
            builder.cbranch(builder.icmp_signed("<", nxt, taps_), loop, done)
            builder.position_at_end(done)
            out = builder.phi(vty, "out")
            out.add_incoming(first, entry)
            out.add_incoming(nxt_acc, loop)
            builder.store(out, builder.bitcast(builder.gep(dp, [d0_]), vty.as_pointer()), align=1)
            return context.get_dummy_value()
        return sig, codegen
    return tap_max


tap_max32 = _tap_max(32)     # one 32-byte block: 32 bytes or 16 16-bit lanes
tap_max16 = _tap_max(16)     # one 16-byte block
