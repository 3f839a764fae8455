"""`--workers N`: a spawned worker answers uvicorn's health check before it loads the stack.

uvicorn pickles the HTTP protocol class into each worker's start-up message and kills a worker
that does not answer its parent's ping within 5 s. Unpickling the class must therefore not
import watchkeeper's serving stack, which on a loaded machine took longer than that.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

from watchkeeper.serving.nodelay import NoDelayProtocol
from watchkeeper.serving.server import serve

HEAVY = ("pandas", "pyarrow", "sqlalchemy", "sklearn", "numpy", "scipy", "starlette")


def test_unpickling_the_protocol_in_a_fresh_process_loads_nothing_heavy() -> None:
    message = pickle.dumps(NoDelayProtocol)
    code = (
        "import pickle, sys, json\n"
        f"cls = pickle.loads({message!r})\n"
        "assert cls.__name__ == 'NoDelayProtocol'\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_server_hands_uvicorn_the_light_protocol() -> None:
    # serve() is what `watchkeeper serve` runs; the class it passes must be the light module's
    assert serve.__globals__["NoDelayProtocol"] is NoDelayProtocol
    assert NoDelayProtocol.__module__ == "watchkeeper.serving.nodelay"
