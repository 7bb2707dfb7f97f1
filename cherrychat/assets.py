"""Where the chat page's static files are: inside the installed package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def static_directory() -> Path:
    """The folder holding ``chat.html``, ``chat.css``, ``chat.js`` and ``orbited.js``.

    An installed CherryChat ships them as the package ``cherrychat.static`` (setup.cfg maps
    the source tree's top-level ``static/`` there); a source checkout that was not
    installed serves the top-level folder itself.
    """
    try:
        installed = Path(str(resources.files("cherrychat.static")))
    except ModuleNotFoundError:
        installed = None
    if installed is not None and (installed / "chat.html").is_file():
        return installed
    return Path(__file__).resolve().parent.parent / "static"
