"""intsim.bench.median_times: warm-up and timed runs alternate the callables run by run, so
intsim's thread choices (made during its warm-up) see the same neighbours as its timed runs."""
from intsim.bench import median_times


def test_warm_up_and_timed_runs_alternate():
    ran = []
    fns = {k: (lambda k=k: ran.append(k)) for k in ("intsim", "ort")}
    out = median_times(fns, runs=3, warmup=2)
    assert ran == ["intsim", "ort"] * 2 + ["intsim", "ort", "ort", "intsim", "intsim", "ort"]
    assert {k: n for k, (_, n) in out.items()} == {"intsim": 3, "ort": 3}
