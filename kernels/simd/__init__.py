"""The SIMD engine: fast exact integer GEMM. Weights packed once into panels, a register-blocked SIMD
micro-kernel, cache blocking over K and N, threads over (M, N) blocks.

Contract (same as kernels.gemm.gemm_acc, for a in uint8/int8 and b in int8/uint8, int4 weights
given as int8 values):

    acc[m, n] = bias[n] + sum_k (a[m, k] - a_zp) * (b[k, n] - b_zp[n])

How it is computed. `pack_b` stores bw[k, n] = b[k, n] - b_zp[n] (|bw| <= 383, so int16) and the
column sums S[n] = sum_k bw[k, n]. At run time, with a' = a + o:

    acc[m, n] = (bias[n] - (a_zp + o) * S[n]) + sum_k a'[m, k] * bw[k, n]

- isa "avx2" (o = 0): vpmaddwd multiplies int16 pairs (a'[m,2s], a'[m,2s+1]) x (bw[2s,n], bw[2s+1,n])
  and sums each pair exactly in int32 (|pair| <= 2*255*383 < 2**18); no saturation anywhere.
- isa "avx512vnni" (o = 128 for int8 a, else 0): vpdpbusd sums four u8 x s8 products exactly
  in int32; used only when every bw fits int8, otherwise the avx2 panels are used.
  (An "avxvnni" host, VEX vpdpbusd on ymm only, gets the avx2 panels for now.)
- isa "amx" (o as avx512vnni): tdpbusd on 16 x 16 int32 tiles, the same u8 x s8 sums of four
  products into int32 without saturation; the avx512vnni panels with K zero-padded to a
  multiple of 64; used only when every bw fits int8 and K >= packing.AMX_MIN_K, and only where
  kernels.cpu.amx_usable (CPU flags and the Linux tile permission). Its int32 sums go through
  a block in memory: an 8-bit output is requantized block by block right after the last K
  block (microkernels.mk_amx_q, the formula below in vectors), other outputs by `epilogue`.
- isa "portable": kernels.gemm.gemm_acc (plain Numba loops).
The sum runs in int32 and wraps mod 2**32, so an int32 `acc` equals the exact sum wrapped to
int32 (as kernels.gemm stores it). An int64 `acc` is exact: when the bound
|bias[n]| + max|a - a_zp| * sum_k |bw[k, n]| may leave int32, the exact portable kernel runs.

The fused variant writes the ORT float requantization (kernels.requant) from the int32 tile:
    y[m, n] = clamp(rint_half_even(f32(acc[m, n]) * mult[n]) + zp, lo, hi), all float32.
Earlier K blocks accumulate int32 sums in a per-item block; in the last K block the
micro-kernel requantizes its registers and stores bytes into y (microkernels, drivers.q_target:
an 8-bit y with unit column stride and any row stride >= N). Other outputs (transposed,
column-strided) go through the int32 block and `epilogue`.

Modules: `packing` (PackedB, pack_b, pack_block, offsets), `drivers` (the per-ISA drivers,
gemm_geo, bind_packed, run_packed), `wrappers` (the checked gemm_packed* entry points and
their NumPy twins), `microkernels` (the LLVM IR micro-kernels). The thread runtime is
kernels.threads.
"""
