"""atheris harness: coverage-guided byte mutations of the committed models fed to
`intsim.load` and `run`. Only `intsim.errors` exceptions are an expected outcome; anything
else (or a crash) is a finding.

    python tests/fuzz/atheris_load.py -max_total_time=60 [-seed=1]

The seeds are the committed small models, mutated by libFuzzer."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["intsim"]):
    from tests.fuzz import harness as H  # noqa: E402

COUNT = [0]
SEEDS = [H.model_bytes(p) for p in H.SMALL_MODEL_PATHS]


def one_input(data: bytes) -> None:
    COUNT[0] += 1   # libFuzzer reports the total itself ("Done N runs")
    if len(data) < 16:   # short inputs: start from a real model with this as the mutation
        data = H.overwrite(SEEDS[COUNT[0] % len(SEEDS)], int.from_bytes(data or b"\0", "little") * 97, data)
    H.run_case(data)


def main(argv) -> None:
    corpus = os.environ.get("INTSIM_FUZZ_CORPUS")
    if corpus and not os.listdir(corpus):
        for i, s in enumerate(SEEDS):
            with open(os.path.join(corpus, f"seed{i}.onnx"), "wb") as f:
                f.write(s)
    H.warm_up()
    atheris.Setup(argv + ([corpus] if corpus else []), one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
