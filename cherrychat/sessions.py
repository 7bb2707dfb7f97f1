"""Browser sessions: the ``cherrychat_session`` cookie, the only thing that grants identity."""

from __future__ import annotations

import re
import secrets

from twisted.web.iweb import IRequest

COOKIE_NAME = b"cherrychat_session"
TOKEN_BYTES = 32  # 256 random bits; the contract asks for at least 128
_TOKEN_PATTERN = re.compile(rb"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """A fresh session token from the ``secrets`` module."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def has_session(request: IRequest) -> bool:
    """Whether the request presents a well-formed session cookie (or already got one)."""
    if getattr(request, "cherrychat_session", None) is not None:
        return True
    presented = request.getCookie(COOKIE_NAME)
    return presented is not None and _TOKEN_PATTERN.fullmatch(presented) is not None


def session_of(request: IRequest) -> str:
    """The caller's session, set as a cookie on this response if it had none.

    Only the cookie is read: no session ever comes from the URL. A cookie that is not a
    well-formed token is replaced.
    """
    cached = getattr(request, "cherrychat_session", None)
    if cached is not None:
        return cached
    presented = request.getCookie(COOKIE_NAME)
    if presented is not None and _TOKEN_PATTERN.fullmatch(presented):
        token = presented.decode("ascii")
    else:
        token = new_token()
        request.addCookie(  # type: ignore[call-arg]
            COOKIE_NAME,
            token.encode("ascii"),
            path=b"/",
            httpOnly=True,
            sameSite="strict",
            secure=request.isSecure(),
        )
    request.cherrychat_session = token  # type: ignore[attr-defined]
    return token
