"""kernels.threads: importing the kernels writes nothing into the environment; configure() sets
the OpenMP spin count once (a value the user set wins), and runs before a threading layer loads."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import os, sys
    user = os.environ.get("GOMP_SPINCOUNT")
    import kernels.simd.drivers, kernels.fast_pairs, kernels.depthwise_nhwc, kernels.reference
    from kernels import threads
    assert os.environ.get("GOMP_SPINCOUNT") == user, "an import wrote GOMP_SPINCOUNT"
    if sys.argv[1] == "layer":
        threads.threadsafe_layer()                 # loads the layer: configures first
    elif sys.argv[1] == "count":
        threads.set_num_threads(2)                 # a caller may start Numba's threads next
    else:
        threads.configure()
        threads.configure()
    assert os.environ["GOMP_SPINCOUNT"] == (user or threads.SPINCOUNT), os.environ["GOMP_SPINCOUNT"]
    print("ok")
""")


def _run(mode, env_value=None):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if env_value is not None:
        env["GOMP_SPINCOUNT"] = env_value
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout + r.stderr)[-2000:]


def test_configure_sets_the_default_once():
    _run("configure")


def test_user_value_wins():
    _run("configure", "123")


def test_layer_load_configures_first():
    _run("layer")


def test_set_num_threads_configures():
    _run("count")
