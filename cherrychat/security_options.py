"""The ``twistd cherrychat`` options of the security bounds, and what they build.

Kept apart from :mod:`cherrychat.tap` so that the options, their defaults and their
checks live beside each other; ``tap`` only lists them and passes :func:`web_security`'s
result to :class:`cherrychat.web.ChatWeb`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from twisted.python import usage

from cherrychat.comet import CometSettings
from cherrychat.limits import LimitSettings
from cherrychat.origins import OriginPolicy, parse_origin
from cherrychat.publish import DEFAULT_MAX_PAYLOAD_BYTES, Publisher, read_token

_DEFAULTS = LimitSettings()
_COMET = CometSettings()


def positive(kind: type) -> Any:
    """An option coercer: ``kind(text)``, refused unless greater than zero."""

    def check(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be positive: {text}")
        return value

    check.coerceDoc = "Must be positive."  # type: ignore[attr-defined]
    return check


def _token_file(path: str) -> str:
    try:
        read_token(path)  # fails the option when the file is missing, empty or too short
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    return path


_token_file.coerceDoc = "A file holding at least 16 printable characters."  # type: ignore[attr-defined]

#: entries for ``Options.optParameters``
SECURITY_PARAMETERS: list[Sequence[Any]] = [
    ["publish-token-file", None, None, "Enable POST /event (publishing for other processes) for holders of the bearer token in this file; off by default (POST /event answers 404)", _token_file],
    ["max-url-bytes", None, _DEFAULTS.max_url_bytes, "Longest request URL (path and query string); longer ones get 414.", positive(int)],
    ["max-body-bytes", None, _DEFAULTS.max_body_bytes, "Largest request body; a larger one gets 413 before it is read.", positive(int)],
    ["max-payload-bytes", None, DEFAULT_MAX_PAYLOAD_BYTES, "Largest payload of POST /event; larger ones get 413.", positive(int)],
    ["max-connections-per-session", None, _COMET.max_connections_per_session, "Open comet connections of one browser session; more get 429.", positive(int)],
    ["max-connections-per-address", None, _COMET.max_connections_per_address, "Open connections (every TCP connection, streaming or not; behind --trusted-proxy, comet connections of the forwarded address) of one client address; more get 429.", positive(int)],
    ["request-timeout", None, _DEFAULTS.request_timeout, "Seconds a request may take to arrive whole, headers and body, from its first byte; later ones get 408.", positive(float)],
    ["idle-timeout", None, _DEFAULTS.idle_timeout, "Seconds a connection may stay silent between requests before it is closed.", positive(float)],
    ["rate-limit", None, _DEFAULTS.rate_limit, "/join and /msg per second of one browser session, sustained; more get 429 with Retry-After.", positive(float)],
    ["rate-burst", None, _DEFAULTS.rate_burst, "/join and /msg one browser session may send at once before --rate-limit applies.", positive(int)],
    ["address-rate-limit", None, _DEFAULTS.address_rate_limit, "/join and /msg per second from one client address, sustained; more get 429 with Retry-After.", positive(float)],
    ["address-rate-burst", None, _DEFAULTS.address_rate_burst, "/join and /msg one client address may send at once before --address-rate-limit applies.", positive(int)],
    ["address-sessions-per-minute", None, _DEFAULTS.address_sessions_per_minute, "New browser sessions (session cookies handed out) per minute from one client address; more get 429 with Retry-After. POST /event is not counted.", positive(int)],
    ["address-joins-per-minute", None, _DEFAULTS.address_joins_per_minute, "/join requests per minute from one client address; more get 429 with Retry-After.", positive(int)],
]


def opt_allowed_origin(options: usage.Options, origin: str) -> None:
    """Also accept state-changing requests and WebSockets from pages of this origin, and
    let them read comet streams and polls with credentials (CORS), scheme://host[:port]
    (repeatable; the daemon's own origin is always allowed)."""
    if parse_origin(origin) is None:
        raise usage.UsageError(f"--allowed-origin: not an origin: {origin!r} (use scheme://host[:port])")
    options.setdefault("allowed-origin", []).append(origin)


def opt_trusted_proxy(options: usage.Options, address: str) -> None:
    """A reverse proxy's IP address: for requests from it, the client address is the last
    one of X-Forwarded-For (repeatable; none by default)."""
    options.setdefault("trusted-proxy", []).append(address.strip())


def connection_caps(config: Mapping[str, Any]) -> dict[str, int]:
    """The per-session and per-address caps, as :class:`CometSettings` fields."""
    return {
        "max_connections_per_session": config.get("max-connections-per-session", _COMET.max_connections_per_session),
        "max_connections_per_address": config.get("max-connections-per-address", _COMET.max_connections_per_address),
    }


def web_security(config: Mapping[str, Any]) -> dict[str, Any]:
    """``limits``, ``origins`` and ``publisher`` for :class:`cherrychat.web.ChatWeb`."""
    defaults: dict[str, Any] = {name: parameter[2] for name, _, *parameter in SECURITY_PARAMETERS}  # type: ignore[misc]

    def get(name: str) -> Any:
        return config.get(name, defaults.get(name))

    limits = LimitSettings(
        max_url_bytes=get("max-url-bytes"),
        max_body_bytes=get("max-body-bytes"),
        request_timeout=get("request-timeout"),
        idle_timeout=get("idle-timeout"),
        rate_limit=get("rate-limit"),
        rate_burst=get("rate-burst"),
        address_rate_limit=get("address-rate-limit"),
        address_rate_burst=get("address-rate-burst"),
        address_sessions_per_minute=get("address-sessions-per-minute"),
        address_joins_per_minute=get("address-joins-per-minute"),
        trusted_proxies=frozenset(config.get("trusted-proxy", ())),
    )
    token_file = config.get("publish-token-file")
    publisher = Publisher(read_token(token_file) if token_file else None, get("max-payload-bytes"))
    return {
        "limits": limits,
        "origins": OriginPolicy(config.get("allowed-origin", ())),
        "publisher": publisher,
    }
