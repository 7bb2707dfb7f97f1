"""Installs what the bench needs where it is missing, and describes the machine."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv"
# The peers and the tools run from their own virtualenv so that they never touch the
# daemon's environment.
VENV_PACKAGES = ["python-socketio", "aiohttp", "sockjs", "matplotlib", "py-spy"]
APT_PACKAGES = ["nginx-light", "libnginx-mod-nchan", "redis-server"]
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
# The cherrychat-redis server runs Debian's build, not one found on PATH.
REDIS_SERVER = Path("/usr/bin/redis-server")


def venv_python() -> Path:
    return VENV / "bin" / "python"


def py_spy() -> Path:
    return VENV / "bin" / "py-spy"


def ensure_apt(nchan: bool = True, redis: bool = True) -> None:
    """Debian's nginx-light and the Nchan module (for ``nchan``), redis-server (for
    ``redis``), where missing."""
    missing = (nchan and not (shutil.which("nginx") and NCHAN_MODULE.exists())) or (redis and not REDIS_SERVER.exists())
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *APT_PACKAGES], check=True, env=env)


def ensure_venv() -> None:
    """bench/.venv with the Python peers, matplotlib and py-spy."""
    probe = "import socketio, sockjs, aiohttp, matplotlib"
    if venv_python().exists() and subprocess.run([str(venv_python()), "-c", probe]).returncode == 0 \
            and py_spy().exists():
        return
    venv.create(VENV, with_pip=True)
    subprocess.run([str(venv_python()), "-m", "pip", "install", "-q", *VENV_PACKAGES], check=True)


def check_tools() -> None:
    """Node runs the load generator and CherryChat must be installed in this Python."""
    if not shutil.which("node"):
        raise SystemExit("bench: node is needed for the load generator")
    if not shutil.which("taskset"):
        raise SystemExit("bench: taskset (util-linux) is needed to pin processes to cores")
    if subprocess.run([sys.executable, "-c", "import cherrychat"], capture_output=True).returncode != 0:
        raise SystemExit("bench: install CherryChat first: pip install .")


def machine() -> dict[str, str]:
    """nproc, CPU model, Python and the versions of what is measured."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break

    def version(argv: list[str]) -> str:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (result.stdout or result.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    peers = version([str(venv_python()), "-c",
                     "import importlib.metadata as m; print(', '.join(p + ' ' + m.version(p) for p in "
                     "('python-socketio', 'python-engineio', 'sockjs', 'aiohttp')))"])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "node": version(["node", "--version"]),
        "nginx": version(["nginx", "-v"]),
        "redis": version([str(REDIS_SERVER), "--version"]),
        "cherrychat": version([sys.executable, "-c", "import cherrychat; print(cherrychat.__version__)"]),
        "twisted": version([sys.executable, "-c", "import twisted; print(twisted.__version__)"]),
        "peers": peers,
    }
