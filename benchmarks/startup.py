"""Start-up time of `intsim run` (issue 19: warm run of a committed model < 1.5 s; first run of a
zoo model <= 10 s on an empty kernel cache after `intsim warmup`).

    PYTHONPATH=. python benchmarks/startup.py warm [--repeat 5] [--out benchmarks/results/startup.json]
    PYTHONPATH=. python benchmarks/startup.py cold [--zoo NAME.rRES.FORM ...]

warm: each committed integer model (models/*.{qdq,qop}*.onnx) run by `python -m intsim run` in a
fresh process on a warm kernel cache and with Python bytecode cached (as in an installed package;
PYTHONDONTWRITEBYTECODE is dropped, the bytecode kept in a temporary PYTHONPYCACHEPREFIX),
`--repeat` times; beside it the bare imports (python, numpy, ml_dtypes, numba, onnx, scipy.linalg,
intsim) and the floor (onnx and numba imported, one cached Numba function loaded) for scale. Each process's CPU seconds (user + sys, from os.wait4: what the
process itself spent, the figure a shared host distorts least) and wall seconds; the host's load
average is recorded before and after.

cold: an empty kernel cache (a fresh NUMBA_CACHE_DIR), `intsim warmup` once (timed), then for each
zoo model (models/cache/arch/, built by models.zoo; default: every architecture and form at
res 64) a fresh copy of that warmed cache (so each model's figure is its own, not helped by the
models before it) and a fresh process (`probe`): import intsim, intsim.load, the first and the
second Program.run (random normal input, batch 1), each in seconds, and every kernel Numba still
compiled (a "numba:compile" event: function, argument types, seconds; nested compiles marked by
depth), plus the process's CPU and wall seconds.
Results are merged into the JSON file under "warm" / "cold".
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = {"python": "pass", "numpy": "import numpy", "ml_dtypes": "import ml_dtypes", "numba": "import numba",
           "onnx": "import onnx", "scipy.linalg": "import scipy.linalg.cython_blas",
           "intsim": "import intsim", "intsim.cli": "import intsim.cli",
           # the floor under any intsim run: onnx and numba imported, and one cached Numba function
           # loaded (Numba's first cache load imports its typing registries, and SciPy's BLAS)
           "floor": "import onnx, numba, floorfn; floorfn.f(1)"}
FLOOR_MODULE = "from numba import njit\n\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n"
ZOO_RES = 64


def zoo_names() -> list:
    """Every architecture-zoo model and form (models.zoo) at ZOO_RES: NAME.rRES.FORM."""
    from models import zoo
    return [f"{a}.r{ZOO_RES}.{f}" for a, kind in zoo.ARCHS.items() for f in zoo.ARCH_FORMS
            if kind == "tokens" or not f.startswith("dynamic")]


def timed(cmd: list, env: dict) -> dict:
    """CPU (user + sys) and wall seconds of one process running cmd."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err[-2000:]}")
    return {"cpu_s": round(ru.ru_utime + ru.ru_stime, 3), "wall_s": round(wall, 3)}


def feeds_file(model: Path, folder: Path) -> Path:
    """An .npz of random inputs of the model's declared shapes (dynamic dimensions 1)."""
    import onnx
    g = onnx.load(str(model), load_external_data=False).graph
    init = {i.name for i in g.initializer}
    feeds = {}
    for i in g.input:
        if i.name in init:
            continue
        t = i.type.tensor_type
        dims = [d.dim_value or 1 for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        x = np.random.default_rng(0).random(dims)
        feeds[i.name] = (x * 100).astype(dtype) if dtype.kind in "iu" else x.astype(dtype)
    path = folder / (model.stem + ".npz")
    np.savez(path, **feeds)
    return path


def run_cmd(model: Path, feeds: Path, out: Path) -> list:
    return [sys.executable, "-m", "intsim", "run", str(model), "--input", str(feeds), "--output", str(out)]


def summary(rows: list) -> dict:
    cpu = [r["cpu_s"] for r in rows]
    wall = [r["wall_s"] for r in rows]
    return {"cpu_s_min": min(cpu), "cpu_s_median": statistics.median(cpu), "wall_s_min": min(wall),
            "wall_s_median": statistics.median(wall), "runs": len(rows)}


def warm(repeat: int) -> dict:
    models = sorted(p for p in (ROOT / "models").glob("*.onnx") if p.name.count(".") == 2)
    res = {"load_before": os.getloadavg(), "imports": {}, "run": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "floorfn.py").write_text(FLOOR_MODULE)
        # bytecode written and read (as an installed package has it), kept out of the tree
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp)]), PYTHONPYCACHEPREFIX=str(tmp / "pyc"))
        timed([sys.executable, "-c", IMPORTS["floor"]], env)      # its Numba cache and bytecode (not timed)
        feeds = {m: feeds_file(m, tmp) for m in models}
        for m in models:            # fills the kernel cache (not timed)
            timed(run_cmd(m, feeds[m], tmp / "o.npz"), env)
        rows: dict = {k: [] for k in list(IMPORTS) + [m.name for m in models]}
        for _ in range(repeat):     # interleaved: load changes hit every row alike
            for k, code in IMPORTS.items():
                rows[k].append(timed([sys.executable, "-c", code], env))
            for m in models:
                rows[m.name].append(timed(run_cmd(m, feeds[m], tmp / "o.npz"), env))
    for k in IMPORTS:
        res["imports"][k] = summary(rows[k])
    for m in models:
        res["run"][m.name] = summary(rows[m.name])
    res["load_after"] = os.getloadavg()
    return res


def probe(path: str, batch: int = 1) -> dict:
    """In this (fresh) process: seconds of `import intsim`, intsim.load(path), the first and the
    second run on random normal inputs (dynamic dimensions `batch`); and the kernels Numba
    compiled meanwhile."""
    t0 = time.perf_counter()
    from numba.core import event

    compiles, starts = [], []

    class Compiles(event.Listener):
        def on_start(self, ev):
            starts.append(time.perf_counter())

        def on_end(self, ev):
            fn = ev.data["dispatcher"].py_func
            compiles.append({"fn": f"{fn.__module__}.{fn.__qualname__}", "args": str(tuple(ev.data["args"])),
                             "s": round(time.perf_counter() - starts.pop(), 3), "depth": len(starts)})
    event.register("numba:compile", Compiles())
    import intsim
    t1 = time.perf_counter()
    prog = intsim.load(path)
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    feeds = {}
    for name in prog.input_names:
        t = prog.graph.tensors[name]
        shape = [d if isinstance(d, int) and d > 0 else batch for d in (t.shape or [1])]
        dt = t.dtype.storage
        feeds[name] = rng.standard_normal(shape).astype(dt) if dt.kind == "f" else np.zeros(shape, dt)
    prog.run(feeds)
    t3 = time.perf_counter()
    prog.run(feeds)
    t4 = time.perf_counter()
    return {"import_s": round(t1 - t0, 3), "load_s": round(t2 - t1, 3), "first_run_s": round(t3 - t2, 3),
            "second_run_s": round(t4 - t3, 3), "compiled_s": round(sum(c["s"] for c in compiles if not c["depth"]), 3),
            "compiles": compiles}


def zoo_path(name: str) -> Path:
    model = ROOT / "models" / "cache" / "arch" / f"{name}.onnx"
    if not model.exists():      # built on demand (the models extra)
        from models import zoo
        arch, res_tag, form = name.split(".")
        model = Path(zoo.arch_quantized_model(arch, form, res=int(res_tag[1:])))
    return model


def cold(names: list) -> dict:
    res = {"load_before": os.getloadavg(), "models": {}}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=cache)
        res["warmup"] = timed([sys.executable, "-m", "intsim", "warmup", "--quiet"], env)
        print(f"warmup: {res['warmup']}", file=sys.stderr, flush=True)
        for name in names:
            model = zoo_path(name)
            own = Path(tmp) / "cache"
            shutil.rmtree(own, ignore_errors=True)
            shutil.copytree(cache, own)     # the warmed cache as warmup left it, for this model alone
            out = Path(tmp) / "probe.json"
            row = timed([sys.executable, "-m", "benchmarks.startup", "probe", str(model), "--out", str(out)],
                        dict(env, NUMBA_CACHE_DIR=str(own)))
            row.update(json.loads(out.read_text()))
            res["models"][name] = row
            print(f"{name}: first run {row['first_run_s']} s, load {row['load_s']} s, "
                  f"{sum(1 for c in row['compiles'] if not c['depth'])} compiles ({row['compiled_s']} s); "
                  f"process {row['wall_s']} s wall, {row['cpu_s']} s CPU", file=sys.stderr, flush=True)
    res["load_after"] = os.getloadavg()
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("warm", "cold", "probe"))
    p.add_argument("model", nargs="?", help="probe: the model file")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=1, help="probe: the size of the inputs' dynamic dimensions")
    p.add_argument("--zoo", nargs="*", default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    a = p.parse_args(argv)
    if a.mode == "probe":
        Path(a.out).write_text(json.dumps(probe(a.model, a.batch)))
        return 0
    if a.mode == "cold" and a.zoo is None:
        a.zoo = zoo_names()
    res = warm(a.repeat) if a.mode == "warm" else cold(a.zoo)
    out = Path(a.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[a.mode] = res
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
