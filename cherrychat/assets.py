"""Where the chat page's static files are: inside the installed package."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def static_directory() -> Path:
    """The folder holding ``chat.html``, ``chat.css``, ``chat.js`` and ``orbited.js``.

    An installed CherryChat ships them in the package as ``cherrychat/static`` (setup.cfg
    maps the source tree's top-level ``static/`` there); a source checkout that was not
    installed serves the top-level folder itself.
    """
    installed = _PACKAGE / "static"
    if (installed / "chat.html").is_file():
        return installed
    return _PACKAGE.parent / "static"
