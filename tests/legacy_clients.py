"""The old Orbited software the compatibility tests run against, installed on first use.

- A Python 2.7 virtualenv (``.cache/legacy/py27``) with pyorbited 0.2.2 (and its demjson),
  CherryPy 3.0.4 and Twisted 20.3.0 from PyPI: the tutorial's publishing side as it was.
- Orbited 0.3.2's own ``orbited.js``, taken from its PyPI sdist (never committed).

``python3 tests/legacy_clients.py`` installs both (``scripts/test`` runs it); the tests call
:func:`python27` and :func:`orbited_js`, which install what is missing and return at once
when it is there. The Python 2.7 interpreter is ``$CHERRYCHAT_PYTHON27``, else pyenv's
2.7, else ``python2.7`` on the PATH. Without one, the tests that need it are
skipped, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "legacy"
VENV = CACHE / "py27"
PY27_REQUIREMENTS = ["pyorbited==0.2.2", "demjson==2.2.4", "CherryPy==3.0.4", "Twisted==20.3.0"]
ORBITED_SDIST = "orbited==0.3.2"
ORBITED_JS = CACHE / "orbited-0.3.2" / "orbited.js"


class Missing(Exception):
    """An old client cannot be had on this machine."""


def _interpreter() -> str:
    candidates = [os.environ.get("CHERRYCHAT_PYTHON27")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python")), reverse=True)
    # pyenv's shim answers for python2.7 even where no 2.7 is selected: not that one.
    found = shutil.which("python2.7")
    candidates += [found] if found and "/shims/" not in found else []
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise Missing("no Python 2.7 interpreter (set CHERRYCHAT_PYTHON27, or install 2.7 with pyenv)")


def _pip(python: str, *arguments: str) -> None:
    quiet = ["--quiet", "--disable-pip-version-check", "--no-warn-script-location"]
    subprocess.run([python, "-m", "pip", "install", *quiet, *arguments], check=True, stderr=subprocess.DEVNULL)  # noqa: S603


def python27() -> str:
    """The Python 2.7 of the virtualenv with the old clients, installed if missing."""
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.txt"
    wanted = "\n".join(PY27_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    interpreter = _interpreter()
    tool = CACHE / "virtualenv-tool"
    if not (tool / "virtualenv").is_dir():
        # The last virtualenv that runs on Python 2.7.
        _pip(interpreter, "--target", str(tool), "virtualenv<20.22")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run(  # noqa: S603 (a fixed command: the test's own)
        [interpreter, "-m", "virtualenv", "--quiet", str(VENV)],
        check=True, env={**os.environ, "PYTHONPATH": str(tool)},
    )
    _pip(str(python), *PY27_REQUIREMENTS)
    stamp.write_text(wanted)
    return str(python)


def orbited_js() -> Path:
    """Orbited 0.3.2's ``static/orbited.js``, from its PyPI sdist, downloaded if missing."""
    if ORBITED_JS.exists():
        return ORBITED_JS
    download = CACHE / "sdist"
    subprocess.run(  # noqa: S603 (a fixed command: the test's own)
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-binary", ":all:", ORBITED_SDIST, "-d", str(download)],
        check=True, stderr=subprocess.DEVNULL,
    )
    (sdist,) = download.glob("orbited-0.3.2.tar.gz")
    with tarfile.open(sdist) as archive:
        member = archive.extractfile("orbited-0.3.2/orbited/static/orbited.js")
        assert member is not None
        ORBITED_JS.parent.mkdir(parents=True, exist_ok=True)
        ORBITED_JS.write_bytes(member.read())
    return ORBITED_JS


def require(getter):  # type: ignore[no-untyped-def]
    """``getter()``, or the test skipped (failed with ``CI=true``) when it cannot be had."""
    from twisted.trial.unittest import SkipTest

    try:
        return getter()
    except (Missing, subprocess.CalledProcessError, OSError) as error:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"legacy client missing: {error}") from error
        raise SkipTest(f"legacy client missing: {error}") from error


if __name__ == "__main__":
    failed = False
    for what, getter in (("Python 2.7 with pyorbited 0.2.2", python27), ("Orbited 0.3.2's orbited.js", orbited_js)):
        try:
            print(f"{what}: {getter()}")
        except (Missing, subprocess.CalledProcessError, OSError) as error:
            print(f"{what} NOT installed: {error}", file=sys.stderr)
            failed = True
    # Elsewhere the tests that need them are skipped; in CI a missing one fails the run.
    sys.exit(1 if failed and os.environ.get("CI") == "true" else 0)
