"""Start-up time of `intsim run` (issue 19: warm run of a committed model < 1.5 s; first run of a
zoo model <= 10 s on an empty kernel cache after `intsim warmup`).

    PYTHONPATH=. python benchmarks/startup.py warm [--repeat 5] [--out benchmarks/results/startup.json]
    PYTHONPATH=. python benchmarks/startup.py cold [--zoo NAME.FORM ...]

warm: each committed integer model (models/*.{qdq,qop}*.onnx) run by `python -m intsim run` in a
fresh process on a warm kernel cache and with Python bytecode cached (as in an installed package;
PYTHONDONTWRITEBYTECODE is dropped, the bytecode kept in a temporary PYTHONPYCACHEPREFIX),
`--repeat` times; beside it the bare imports (python, numpy, ml_dtypes, numba, onnx, scipy.linalg,
intsim) and the floor (onnx and numba imported, one cached Numba function loaded) for scale. Each process's CPU seconds (user + sys, from os.wait4: what the
process itself spent, the figure a shared host distorts least) and wall seconds; the host's load
average is recorded before and after.

cold: an empty kernel cache (a fresh NUMBA_CACHE_DIR), `intsim warmup` once, then for each zoo
model (models/cache/arch/, built by models.zoo) its first and second `intsim run`.
Results are merged into the JSON file under "warm" / "cold".
"""
from __future__ import annotations

import argparse
import json
import os
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
ZOO = ("mobilenet_v3_small.r64.qdq_u8", "squeezenet1_1.r64.qop_u8", "shufflenet_v2_x1_0.r64.qdq_u8")


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


def cold(names: list) -> dict:
    res = {"load_before": os.getloadavg(), "models": {}}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=cache)
        res["warmup"] = timed([sys.executable, "-m", "intsim", "warmup", "--quiet"], env)
        for name in names:
            model = ROOT / "models" / "cache" / "arch" / f"{name}.onnx"
            if not model.exists():      # built on demand (the models extra)
                from models import zoo
                arch, res_tag, form = name.split(".")
                model = Path(zoo.arch_quantized_model(arch, form, res=int(res_tag[1:])))
            f = feeds_file(model, Path(tmp))
            first = timed(run_cmd(model, f, Path(tmp) / "o.npz"), env)
            second = timed(run_cmd(model, f, Path(tmp) / "o.npz"), env)
            res["models"][name] = {"first": first, "second": second}
    res["load_after"] = os.getloadavg()
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("warm", "cold"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--zoo", nargs="*", default=list(ZOO))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    a = p.parse_args(argv)
    res = warm(a.repeat) if a.mode == "warm" else cold(a.zoo)
    out = Path(a.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[a.mode] = res
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
