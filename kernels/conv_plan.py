"""A GEMM-kind conv of a whole batch, checked once (the plan) and run many times.

Both SIMD conv engines (kernels.fast_conv: exact vpmaddwd sums; kernels.fast_pairs:
onnxruntime's pair-saturating vpmaddubsw sums) compute, per chunk of images and per group g,

    cols = im2col rows of x (images*OH*OW, KH*KW*Cg), K order (ky, kx, c)   (kernels.conv_rows)
    raw  = gemm_g(cols)                       int32 (rows, Mg), wrapping mod 2**32
    acc  = int64(raw) + off_g[j] - wz_g[j] * rowsum(cols)[r]
    out[n, g*Mg + j, p] = acc, int32(acc) or its ORT float requantization (rq)

and differ only in gemm_g (which includes or leaves out bias and zero-point terms) and in off_g,
wz_g. A plan holds everything that does not depend on x: the geometry, per-group GEMM callables
and offsets, the requantization. `make_plan` validates them; `run_plan` checks only x and out
(dtype, shape, contiguity) before touching memory.

x and out may each be NCHW or channels-last (NHWC) arrays (the executor keeps activations
channels-last between layers, intsim.layout). When the plan requantizes and the GEMM's sums are
the whole acc (no wz term), the micro-kernel requantizes in registers and writes bytes (gemm_q),
and for kernel rows of at least IMPLICIT_MIN_RUN bytes the GEMM packs its A tiles straight from
the NHWC image (conv_q: implicit im2col, no rows in memory); the same integers either way.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import numpy as np

from . import conv_rows
from .conv import conv_out_hw
from .workspace import scratch


class GroupPlan(NamedTuple):
    gemm: Callable        # gemm(cols (rows, K) C-contiguous, raw (rows, Mg) int32) -> None
    off: np.ndarray       # int64 (Mg,)
    wz: np.ndarray        # int64 (Mg,)
    rowsum: bool          # whether any wz is non-zero (the row sums are needed)
    bind_q: Callable = None   # bind_q(rows, conv, x_shape, rq) -> call(src, q): when the GEMM's own
    #   sums are the whole acc (off and wz terms inside them), call writes q (rows, Mg) 8-bit, the
    #   requantized rows of src = cols (rows, K) flattened; or, with conv = (c0, cg, kh, kw, cgeo,
    #   pad), of the im2col rows of src = the NHWC image of shape x_shape flattened, packed tile by
    #   tile (never stored). Work split and threads are fixed when bound.


class ConvPlan(NamedTuple):
    in_chw: tuple         # (C, H, W) of x
    x_dtype: np.dtype
    x_zp: int
    m: int
    cg: int
    kh: int
    kw: int
    oh: int
    ow: int
    cgeo: np.ndarray      # int64 [sh, sw, pt, pl, dh, dw, OH, OW]
    plain: bool           # 1x1, unit strides, no pads, one group: the rows are x's NHWC pixels
    groups: tuple         # GroupPlan per group
    rq: tuple             # (requant, mult float32 (M,), zp, lo, hi) int64 scalars


def make_plan(in_chw, x_dtype, x_zp, geom, w_shape, groups, rq) -> ConvPlan:
    """Check and assemble a plan; geom: kernels.conv.ConvGeom, w_shape (M, Cg, KH, KW)."""
    c, h, w = (int(v) for v in in_chw)
    m, cg, kh, kw = (int(v) for v in w_shape)
    group = int(geom.group)
    x_dtype = np.dtype(x_dtype)
    if x_dtype not in (np.uint8, np.int8) or c != cg * group or m % group or len(groups) != group:
        raise ValueError(f"conv plan: x {x_dtype} ({c}, {h}, {w}), weights {tuple(w_shape)} and "
                         f"{group} groups ({len(groups)} planned) do not fit")
    info = np.iinfo(x_dtype)
    if not info.min <= int(x_zp) <= info.max:
        raise ValueError(f"conv plan: x_zp {x_zp} outside the {x_dtype} range")
    oh, ow = conv_out_hw(h, w, kh, kw, geom)
    if oh < 1 or ow < 1:
        raise ValueError(f"conv plan: kernel {kh}x{kw} does not fit the input {h}x{w}")
    mg = m // group
    for gp in groups:
        if gp.off.dtype != np.int64 or gp.off.shape != (mg,) or gp.wz.dtype != np.int64 or gp.wz.shape != (mg,):
            raise ValueError(f"conv plan: per-group offsets must be int64 ({mg},)")
    requant, mult = bool(rq[0]), np.ascontiguousarray(rq[1], np.float32)
    if requant and (mult.shape != (m,) or not np.all(np.isfinite(mult))):
        raise ValueError(f"conv plan: mult must be finite float32 ({m},)")
    cgeo = np.array([geom.stride_h, geom.stride_w, geom.pad_top, geom.pad_left, geom.dil_h, geom.dil_w, oh, ow],
                    np.int64)
    plain = group == 1 and conv_rows.is_plain_1x1(kh, kw, geom)
    rq = (requant, mult, np.int64(rq[2]), np.int64(rq[3]), np.int64(rq[4]))
    return ConvPlan((c, h, w), x_dtype, int(x_zp), m, cg, kh, kw, oh, ow, cgeo, plain, tuple(groups), rq)


IMPLICIT_MIN_RUN = 32   # bytes per kernel row (KW*Cg) from which the GEMM packs its tiles from the
#                         image: shorter runs are cheaper through im2col rows (MobileNetV2 stem,
#                         3x3x3 at batch 8: 938 us implicit vs 600 us through rows, one thread)
_Q8_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def _dims(a, layout):
    """(N, C, H, W) of a 4-D array in `layout` ("nchw" or "nhwc")."""
    return a.shape if layout == "nchw" else (a.shape[0], a.shape[3], a.shape[1], a.shape[2])


def _shape(n, c, h, w, layout):
    return (n, c, h, w) if layout == "nchw" else (n, h, w, c)


def check_io(plan: ConvPlan, x, out, where: str, x_layout: str = "nchw", out_layout: str = "nchw") -> None:
    """x (N, C, H, W) (or (N, H, W, C) for x_layout "nhwc") of the planned dtype and shape; out
    (N, M, OH, OW) (or (N, OH, OW, M)) C-contiguous, uint8/int8 when the plan requantizes, else
    int32/int64."""
    if x_layout not in ("nchw", "nhwc") or out_layout not in ("nchw", "nhwc"):
        raise ValueError(f"{where}: layouts must be 'nchw' or 'nhwc', got {x_layout!r}, {out_layout!r}")
    c, h, w = plan.in_chw
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != plan.x_dtype or _dims(x, x_layout)[1:] != plan.in_chw:
        raise ValueError(f"{where}: x must be {plan.x_dtype} {_shape('N', c, h, w, x_layout)}, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {np.shape(x)}")
    if x_layout == "nhwc" and not x.flags.c_contiguous:
        raise ValueError(f"{where}: an NHWC x must be C-contiguous")
    shape = _shape(x.shape[0], plan.m, plan.oh, plan.ow, out_layout)
    kinds = (np.uint8, np.int8) if plan.rq[0] else (np.int32, np.int64)
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype not in kinds or not out.flags.c_contiguous:
        raise ValueError(f"{where}: out must be a C-contiguous {'/'.join(np.dtype(k).name for k in kinds)} array "
                         f"of shape {shape}, got {getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}")
    if plan.rq[0]:
        _check_q_range(plan, out.dtype, where)


def _check_q_range(plan: ConvPlan, dtype, where: str) -> None:
    """A requantizing plan's lo <= zp <= hi inside the 8-bit output type."""
    if dtype not in _Q8_RANGE:
        raise ValueError(f"{where}: a requantizing plan writes uint8/int8, not {dtype}")
    lo, hi = _Q8_RANGE[dtype]
    if not lo <= int(plan.rq[3]) <= int(plan.rq[2]) <= int(plan.rq[4]) <= hi:
        raise ValueError(f"{where}: need {lo} <= lo <= zp <= hi <= {hi}")


def _implicit(plan: ConvPlan, gp: GroupPlan) -> bool:
    """Whether group gp's requantized GEMM packs its A tiles straight from the NHWC image."""
    return plan.rq[0] and gp.bind_q is not None and not plan.plain and plan.kw * plan.cg >= IMPLICIT_MIN_RUN


def _conv_args(plan: ConvPlan, gi: int) -> tuple:
    return (gi * plan.cg, plan.cg, plan.kh, plan.kw, plan.cgeo, plan.x_zp)


def run_plan(plan: ConvPlan, x, out, where: str = "conv", x_layout: str = "nchw", out_layout: str = "nchw") -> None:
    """out = the planned conv of x (module docstring). x_layout / out_layout: "nchw" (N, C, H, W)
    or "nhwc" (N, H, W, C) arrays (channels-last ones skip the layout moves)."""
    check_io(plan, x, out, where, x_layout, out_layout)
    n_img = x.shape[0]
    p = plan.oh * plan.ow
    mg = plan.m // len(plan.groups)
    k = plan.kh * plan.kw * plan.cg
    xh = x if x_layout == "nhwc" else conv_rows.to_nhwc(np.ascontiguousarray(x), conv_rows.runner(x.size))
    nhwc = out_layout == "nhwc"
    out3 = out.reshape(n_img, p, plan.m) if nhwc else out.reshape(n_img, plan.m, p)
    chunk = conv_rows.image_chunk(p, k + 4 * mg, n_img)
    none = np.zeros(0, np.int64)
    for n0 in range(0, n_img, chunk):
        n1 = min(n_img, n0 + chunk)
        rows = (n1 - n0) * p
        for gi, gp in enumerate(plan.groups):
            implicit = _implicit(plan, gp)
            cols = None if implicit else _cols(plan, xh[n0:n1], gi, rows, k)
            if plan.rq[0] and gp.bind_q is not None:
                # requantized in the GEMM's micro-kernel: straight into an NHWC out (the group's
                # columns), else into rows and one byte transpose into the planes
                q = out3[n0:n1].reshape(rows, plan.m)[:, gi * mg:(gi + 1) * mg] if nhwc else \
                    scratch("conv.q", (rows, mg), out.dtype)
                src = xh[n0:n1] if implicit else cols
                gp.bind_q(rows, _conv_args(plan, gi) if implicit else None, src.shape, plan.rq)(src.reshape(-1), q)
                if not nhwc:
                    _rows_to_planes(q, out3[n0:n1], gi * mg)
                continue
            raw = scratch("conv.raw", (rows, mg), np.int32)
            gp.gemm(cols, raw)
            rowsum = conv_rows.row_sums(cols, conv_rows.runner(cols.size)) if gp.rowsum else none
            finish = conv_rows.rows_to_nhwc if nhwc else conv_rows.rows_to_nchw
            finish(raw, gp.off, gp.wz, rowsum, plan.rq, out3[n0:n1], gi * mg, conv_rows.runner(raw.size))


def _cols(plan: ConvPlan, xh, gi, rows, k, run=None):
    """The im2col rows (rows, K) of group gi of the NHWC images xh (x's pixels for a plain 1x1);
    run: the im2col pass's work split (default conv_rows.runner of its size)."""
    if plan.plain:
        return xh.reshape(rows, k)
    cols = scratch("conv.cols", (rows, k), plan.x_dtype)
    conv_rows.im2col_rows(xh, gi * plan.cg, plan.cg, plan.kh, plan.kw, plan.cgeo, plan.x_zp, cols,
                          conv_rows.runner(cols.size) if run is None else run)
    return cols


class BoundPlan:
    """A requantizing plan bound to one batch size and layout pair: every per-call constant (work
    split, descriptors, offsets, multipliers) is computed once, so a call checks x and out
    (shape, dtype, contiguity: the exact arrays the descriptors were built for) and runs the
    kernels. Same results as run_plan. The work split uses the kernel thread count at binding
    (kernels.threads.get_num_threads()); rebind when that changes."""

    def __init__(self, plan: ConvPlan, n_img: int, x_layout: str, out_layout: str, out_dtype, where: str):
        c, h, w = plan.in_chw
        self.plan, self.where, self.layouts = plan, where, (x_layout, out_layout)
        self.x_shape = _shape(n_img, c, h, w, x_layout)
        self.out_shape = _shape(n_img, plan.m, plan.oh, plan.ow, out_layout)
        self.out_dtype = np.dtype(out_dtype)
        # the layouts the kernels run in: a side of one pixel (an SE block's 1x1 convs) or one
        # channel (an audio net's first conv) holds the same bytes NCHW and NHWC, so it runs
        # channels-last (no transpose pass)
        self.runs = (x_layout if h * w > 1 and c > 1 else "nhwc",
                     out_layout if plan.oh * plan.ow > 1 and plan.m > 1 else "nhwc")
        if not BoundPlan.fits(plan, n_img) or x_layout not in ("nchw", "nhwc") or \
                out_layout not in ("nchw", "nhwc"):
            raise ValueError(f"{where}: this plan cannot be bound ({n_img} images, {x_layout} -> {out_layout})")
        _check_q_range(plan, self.out_dtype, where)
        self.p, self.mg, self.k = plan.oh * plan.ow, plan.m // len(plan.groups), plan.kh * plan.kw * plan.cg
        rows = n_img * self.p
        xh_shape = self.xh_shape = _shape(n_img, c, h, w, "nhwc")
        self.calls = []
        for gi, gp in enumerate(plan.groups):
            implicit = _implicit(plan, gp)
            src_shape = xh_shape if implicit else (rows, self.k)
            self.calls.append((gi, implicit, gp.bind_q(rows, _conv_args(plan, gi) if implicit else None,
                                                       src_shape, plan.rq)))
        self.rows = rows
        # the layout and im2col passes' work split, fixed like the GEMM's at binding
        self.x_run = conv_rows.runner(n_img * c * h * w)
        self.cols_run = conv_rows.runner(rows * self.k)
        self.out2_shape, self.planes_shape = (rows, plan.m), (n_img, plan.m, self.p)
        # one group written straight into an NHWC out: the common case, one kernel call
        _, implicit, call = self.calls[0]
        self.direct = call if len(self.calls) == 1 and self.runs[1] == "nhwc" and (implicit or plan.plain) else None
        # gemm_rows' one-call path: x's channels-last pixels are the GEMM rows
        self.by_rows = self.direct is not None and plan.plain and self.runs[0] == "nhwc"
        self.x_size, self.out_size = rows * c, rows * plan.m

    @staticmethod
    def fits(plan: ConvPlan, n_img: int) -> bool:
        """Whether a plan can be bound for n_img images: requantizing, every group with bind_q,
        and the batch in one chunk of images."""
        k, mg = plan.kh * plan.kw * plan.cg, plan.m // len(plan.groups)
        return bool(plan.rq[0]) and all(gp.bind_q is not None for gp in plan.groups) and \
            conv_rows.image_chunk(plan.oh * plan.ow, k + 4 * mg, n_img) >= n_img

    def _bound_arrays(self, x, out) -> bool:
        """x and out are exactly the arrays this binding was built for (x C-contiguous when
        the kernels read it channels-last, self.runs)."""
        return (type(x) is np.ndarray and x.shape == self.x_shape and x.dtype == self.plan.x_dtype
                and type(out) is np.ndarray and out.shape == self.out_shape and out.dtype == self.out_dtype
                and out.flags.c_contiguous and (self.runs[0] == "nchw" or x.flags.c_contiguous))

    def freeze(self, x, out):
        """A call() doing self(x, out) on these very arrays, its checks done now: the single
        kernel call itself when x is channels-last and the plan has the one-call path; the groups'
        calls in order when both sides are channels-last and every group packs from the image; for one
        group whose layout, im2col and NCHW-output passes run on one thread and fit
        FREEZE_OWN_BYTES, those passes through buffers of its own around the kernel; else self(x, out)."""
        plan, (x_layout, out_layout) = self.plan, self.runs
        if not self._bound_arrays(x, out):
            return partial(self, x, out)
        out2 = out.reshape(self.out2_shape)
        if self.direct is not None and x_layout == "nhwc":
            return partial(self.direct, x.reshape(-1), out2)
        if len(self.calls) > 1 and x_layout == out_layout == "nhwc" and all(c[1] for c in self.calls):
            # groups packed from the image straight into their columns of out: the calls __call__
            # makes, bound once (RegNetX's 25-group layers: no per-group slicing per run)
            xf, mg = x.reshape(-1), self.mg
            return partial(_in_order, tuple(partial(call, xf, out2[:, gi * mg:(gi + 1) * mg])
                                            for gi, _, call in self.calls))
        _, implicit, call = self.calls[0]
        cols_bytes = 0 if implicit or plan.plain else self.rows * self.k
        q_bytes = self.rows * plan.m * out.itemsize if out_layout == "nchw" else 0
        if len(self.calls) != 1 or (x.nbytes if x_layout == "nchw" else 0) + cols_bytes + q_bytes > FREEZE_OWN_BYTES \
                or (x_layout == "nchw" and self.x_run is not None) or (cols_bytes and self.cols_run is not None) \
                or (q_bytes and conv_rows.runner(q_bytes) is not None):
            return partial(self, x, out)
        calls, xh = [], x if x_layout == "nchw" else x.reshape(self.xh_shape)
        if x_layout == "nchw":
            n, c, h, w = x.shape
            xh = np.empty((n, h, w, c), x.dtype)
            calls.append(conv_rows.bind_to_nhwc(x, xh))
        src = xh
        if not (implicit or plan.plain):
            src = np.empty((self.rows, self.k), plan.x_dtype)
            calls.append(conv_rows.bind_im2col_rows(xh, 0, plan.cg, plan.kh, plan.kw, plan.cgeo, plan.x_zp, src))
        if out_layout == "nhwc":
            calls.append(partial(call, src.reshape(-1), out2))
        else:       # the rows into a buffer, then to the NCHW planes (as _rows_to_planes)
            n, m, p = self.planes_shape
            q = np.empty((self.rows, m), out.dtype)
            calls += [partial(call, src.reshape(-1), q), conv_rows.bind_to_nhwc(q.reshape(n, p, m, 1),
                                                                                 out.reshape(n, m, 1, p))]
        return calls[0] if len(calls) == 1 else partial(_in_order, tuple(calls))

    def gemm_rows(self, a, y) -> None:
        """self(x, out) for a MatMul's view of a plain 1x1 conv (its pixels are the GEMM rows):
        a (..., K) holding x's channels-last bytes and y (..., M) the output's. When the plan
        is one direct call on x's pixels (self.by_rows) and a and y are C-contiguous arrays of
        the bound dtypes, sizes and last dimensions, that call runs on their flat and (rows, M)
        views: two views a call against the five of reshaping both to 4-D for self(x, out)
        (MobileNetV2's 784 x 192 x 32 QLinearMatMul is a 10 us kernel). Else a and y are
        reshaped to the bound 4-D shapes for self(x, out) (its checks, or run_plan's error)."""
        if self.by_rows and type(a) is np.ndarray and type(y) is np.ndarray and a.dtype == self.plan.x_dtype \
                and y.dtype == self.out_dtype and a.size == self.x_size and y.size == self.out_size \
                and a.shape[-1] == self.k and y.shape[-1] == self.plan.m and a.flags.c_contiguous \
                and y.flags.c_contiguous:
            self.direct(a.reshape(-1), y.reshape(self.out2_shape))
            return
        self(np.ascontiguousarray(a).reshape(self.x_shape), y.reshape(self.out_shape))

    def __call__(self, x, out) -> None:
        if not self._bound_arrays(x, out):
            run_plan(self.plan, x, out, self.where, *self.layouts)    # checks, then the general path
            return
        x_layout, out_layout = self.runs
        plan, mg = self.plan, self.mg
        xh = x.reshape(self.xh_shape) if x_layout == "nhwc" else \
            conv_rows.to_nhwc(x, self.x_run, out=scratch("conv.xh", self.xh_shape, x.dtype))
        if self.direct is not None:
            self.direct(xh.reshape(-1), out.reshape(self.out2_shape))     # x's pixels are the rows
            return
        nhwc = out_layout == "nhwc"
        out2 = out.reshape(self.out2_shape) if nhwc else None
        for gi, implicit, call in self.calls:
            src = xh if implicit else _cols(plan, xh, gi, self.rows, self.k, self.cols_run)
            q = out2[:, gi * mg:(gi + 1) * mg] if nhwc else scratch("conv.q", (self.rows, mg), out.dtype)
            call(src.reshape(-1), q)
            if not nhwc:
                _rows_to_planes(q, out.reshape(self.planes_shape), gi * mg)


def bind_plan(plan: ConvPlan, n_img: int, x_layout: str, out_layout: str, out_dtype, where: str = "conv"):
    """call(x, out) running the plan for n_img images of x_layout into out_layout, with
    call.freeze(x, out) -> call() for these very arrays: a BoundPlan when the plan fits one
    (BoundPlan.fits), else run_plan's checked general path."""
    if BoundPlan.fits(plan, n_img):
        return BoundPlan(plan, n_img, x_layout, out_layout, out_dtype, where)
    run = partial(_run_general, plan, where, x_layout, out_layout)
    run.freeze = lambda x, out: partial(run, x, out)
    return run


def _run_general(plan, where, x_layout, out_layout, x, out):
    run_plan(plan, x, out, where, x_layout, out_layout)


FREEZE_OWN_BYTES = 1 << 18     # layout/im2col buffers a frozen bound plan may own (BoundPlan.freeze)


def _in_order(calls) -> None:
    for call in calls:
        call()


def _rows_to_planes(q, out3, ch0):
    """out3[n, ch0 + j, p] = q[n*P + p, j]: requantized rows (n*P, Mg) into NCHW planes."""
    n, m, p = out3.shape
    mg = q.shape[1]
    if mg == m:
        conv_rows.to_nhwc(q.reshape(n, p, mg, 1), conv_rows.runner(q.size), out=out3.reshape(n, mg, 1, p))
    else:
        out3[:, ch0:ch0 + mg] = q.reshape(n, p, mg).transpose(0, 2, 1)
