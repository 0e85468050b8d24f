"""Integer kernels of intsim: pure Numba functions over NumPy arrays, importable on their own.

Conventions shared by every kernel module:
- The caller allocates `out`/`acc`; kernels only compute.
- Products and sums are formed in int64 inside the kernel and stored into `acc`, whose dtype
  the caller chooses: int32 (a store wraps, as hardware does) or int64 (exact, so an
  `exact` accumulator can detect leaving int32).
- Each kernel `name` has a NumPy int64 twin `name_ref` with the same signature, in the same
  module; `kernels.reference` re-exports the twins so the executor can run in reference mode.
- Public wrappers (no leading underscore) validate shapes and dtypes before calling jitted
  code; the jitted bodies are `_name_impl`.
"""
