"""The throwaway virtual environment the peers are served from (never watchkeeper's own).

MLflow and BentoML are installed there with pip, next to the very scikit-learn and NumPy
versions of the environment that trains the models, so each peer loads the same pickles and
calls the same ``predict``. The venv is reused while it was made for the same requirements;
``--fresh`` (``ensure_venv(fresh=True)``) builds it anew.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import sklearn

DEFAULT_VENV = Path.home() / ".cache" / "watchkeeper-bench" / "peers-venv"
STAMP = "watchkeeper-peers.json"
VERSIONS = """
import importlib.metadata as m, json, platform
names = ("mlflow", "bentoml", "scikit-learn", "numpy", "pandas", "uvicorn", "gunicorn",
         "fastapi", "flask")
found = {}
for name in names:
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
found["python"] = platform.python_version()
print(json.dumps(found))
"""


def requirements() -> list[str]:
    """What the peer venv holds: the peers' current releases (BentoML 1.4.x) and this
    environment's scikit-learn and NumPy, pinned."""
    return [
        "mlflow",
        "bentoml>=1.4,<1.5",
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={numpy.__version__}",
    ]


def ensure_venv(path: Path = DEFAULT_VENV, *, fresh: bool = False) -> dict[str, str]:
    """Make (or reuse) the peer venv at ``path``; return the versions installed in it."""
    wanted = requirements()
    stamp = path / STAMP
    if fresh and path.exists():
        shutil.rmtree(path)
    if stamp.exists() and json.loads(stamp.read_text()).get("requirements") == wanted:
        print(f"reusing the peer venv {path} (--fresh to rebuild it)", flush=True)
    else:
        if path.exists():
            shutil.rmtree(path)
        print(f"installing {' '.join(wanted)} into {path} ...", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *wanted], check=True)
        stamp.write_text(json.dumps({"requirements": wanted}))
    out = subprocess.run(
        [str(path / "bin" / "python"), "-c", VERSIONS], capture_output=True, text=True, check=True
    )
    versions: dict[str, str] = json.loads(out.stdout)
    return versions
