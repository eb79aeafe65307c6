"""Which requests ``medden serve`` answers: its own Host names, and state changes from its own page only.

Two attacks reach a server that listens on 127.0.0.1 from a web page open in a browser on the
same machine:

* **DNS rebinding**: a page at ``http://evil.example:8000`` makes its name resolve to
  127.0.0.1 and then reads the viewer as if it were its own origin. The browser still sends
  ``Host: evil.example:8000``, so the server answers only the names it is bound to
  (:func:`accepted_hosts`) and refuses any other Host with 400. The port is not checked:
  a rebinding page reaches the same port anyway, only the name tells it apart, and the app
  does not always know its port (uvicorn may be handed a socket, or run behind a proxy).
* **Cross-site request forgery**: any page can send a form POST to ``http://127.0.0.1:8000``.
  A request that is not GET, HEAD or OPTIONS must come from the server's own origin: its
  ``Origin`` header, when present, must equal ``scheme://Host``; without one, a
  ``Sec-Fetch-Site`` header other than ``same-origin`` or ``none`` is refused (403), also
  ``same-site``, which another local web app on another port is. A request with neither header
  (curl, scripts) is answered: current browsers send ``Origin`` with every POST.

GET routes change nothing. Their answers (results under random job ids) cannot be read by
another origin, because the server sends no CORS headers.

Starlette's ``TrustedHostMiddleware`` checks Host names too, but answers a plain-text
"Invalid host header" that names neither the Host received nor the allowed names, and does
nothing about cross-origin requests; :class:`RequestGuard` does both, with JSON messages the
page shows. This module needs no extra: it speaks plain ASGI.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["LOOPBACK_NAMES", "SAFE_METHODS", "RequestGuard", "accepted_hosts", "host_problem", "origin_problem",
           "split_host"]

#: The names a loopback bind answers to (IPv6 without brackets, as :func:`split_host` returns it).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Methods that change nothing, so they are answered whatever their origin.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``Sec-Fetch-Site`` values of a request made by the server's own page or typed by the user.
SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")


def split_host(value: str) -> tuple[str, int | None]:
    """Split a Host header (or an origin's ``host[:port]``) into a lower-case name and a port.

    ``"LocalHost:8000"`` -> ``("localhost", 8000)``, ``"[::1]"`` -> ``("::1", None)``; an IP
    address comes in its short form, without brackets.

    Raises:
        ValueError: not ``name[:port]`` or ``[IPv6][:port]`` with a numeric port.
    """
    text = value.strip().lower()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        has_port, port = rest.startswith(":"), rest[1:]
        malformed = not bracket or (rest and not has_port)
    else:
        host, has_port, port = text.rpartition(":") if ":" in text else (text, "", "")
        malformed = False
    if malformed or not host or (has_port and not (port.isascii() and port.isdigit())):
        raise ValueError(f"{value[:100]!r} is not host[:port] or [IPv6 address][:port] with a numeric port")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return host, int(port) if port else None


def _bare_name(name: str, what: str) -> str:
    """``name`` lower-cased, IPv6 brackets removed, IP addresses in their short form.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not a host name or IP address; the message names ``what``.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what}: expected a host name (str), got {type(name).__name__} {name!r}")
    bare = name.strip().lower().removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        if _HOST_NAME.fullmatch(bare):
            return bare
    raise ValueError(f"{what}: {name!r} is not a host name or IP address; give the bare name, e.g. "
                     "'viewer.example.org' or '192.168.1.20', with no scheme, port or wildcard")


def _is_address(name: str, test: str) -> bool:
    try:
        return getattr(ipaddress.ip_address(name), test)
    except ValueError:
        return False


def accepted_hosts(bind_host: str, allowed_hosts: Sequence[str] = ()) -> frozenset[str] | None:
    """The Host names a server bound to ``bind_host`` answers to (lower case, IPv6 without brackets).

    Args:
        bind_host: the address the server listens on, as given to uvicorn.
        allowed_hosts: more names, e.g. the one a reverse proxy forwards.

    Returns:
        ``bind_host`` and ``allowed_hosts``, plus :data:`LOOPBACK_NAMES` for a loopback bind
        (``127.0.0.1``, ``::1``, ``localhost``). ``None`` (any Host) for an all-interfaces bind
        (``0.0.0.0``, ``::``) without ``allowed_hosts``: such a server has no one name and is
        exposed to the network; with ``allowed_hosts`` it answers those and the loopback names.

    Raises:
        ValueError: ``bind_host`` or an ``allowed_hosts`` entry is not a host name or IP address.
    """
    bind = _bare_name(bind_host, "host")
    extra = {_bare_name(name, "allowed_hosts") for name in allowed_hosts}
    if _is_address(bind, "is_unspecified"):
        return frozenset(extra | set(LOOPBACK_NAMES)) if extra else None
    if bind == "localhost" or _is_address(bind, "is_loopback"):
        extra |= set(LOOPBACK_NAMES)
    return frozenset(extra | {bind})


def host_problem(host_header: str | None, accepted: frozenset[str] | None) -> str | None:
    """Why a request with this Host header is refused, or ``None`` if it is answered.

    Args:
        host_header: the request's Host header (``None`` when it has none).
        accepted: from :func:`accepted_hosts`; ``None`` accepts any Host.
    """
    if accepted is None:
        return None
    shown = ", ".join(f"[{name}]" if ":" in name else name for name in sorted(accepted))
    if host_header is None:
        return f"the request has no Host header; this server answers to {shown}."
    try:
        name, _ = split_host(host_header)
    except ValueError:
        name = None
    if name in accepted:
        return None
    return (f"the Host header {host_header[:100]!r} is not a name this server answers to ({shown}; any port), "
            "which guards against DNS rebinding; open the viewer at one of those names, or start it with "
            "--allowed-host NAME (create_app(allowed_hosts=...)) for a name that reaches it on purpose, "
            "e.g. through a proxy.")


def origin_problem(method: str, scheme: str, host_header: str, origin: str | None,
                   fetch_site: str | None) -> str | None:
    """Why a request is refused as cross-origin, or ``None`` if it is answered.

    Args:
        method: the HTTP method; those in :data:`SAFE_METHODS` are always answered.
        scheme: the request's scheme (``http`` or ``https``).
        host_header: the request's Host header, already accepted by :func:`host_problem`.
        origin: the ``Origin`` header, if any.
        fetch_site: the ``Sec-Fetch-Site`` header, if any; read only without ``Origin``.
    """
    if method.upper() in SAFE_METHODS:
        return None
    own = f"{scheme}://{host_header}"
    if origin is None:
        if fetch_site is None or fetch_site.strip().lower() in SAME_ORIGIN_FETCH_SITES:
            return None
        return (f"{method} refused: the browser marked it as sent by another page ('Sec-Fetch-Site: "
                f"{fetch_site[:40]}'), not by the viewer's own; send it from the viewer's page ({own}/).")
    if _same_origin(origin, scheme, host_header):
        return None
    return (f"cross-origin {method} refused: it comes from {origin[:100]!r}, but this server's origin is {own!r}; "
            f"use the viewer's own page ({own}/).")


def _same_origin(origin: str, scheme: str, host_header: str) -> bool:
    """``origin`` is ``scheme://host_header`` (case and default ports aside); ``null`` never is."""
    parts = urlsplit(origin.strip())
    try:
        theirs, ours = split_host(parts.netloc), split_host(host_header)
    except ValueError:
        return False
    if parts.scheme.lower() != scheme.lower() or parts.path or theirs[0] != ours[0]:
        return False
    default = _DEFAULT_PORTS.get(scheme.lower())
    return (theirs[1] or default) == (ours[1] or default)


class RequestGuard:
    """ASGI middleware: refuse a Host not in :func:`accepted_hosts` (400) and cross-origin state changes (403).

    Both refusals are ``{"detail": message}`` JSON, as the app's other errors. Other scopes
    (lifespan) pass through.

    Args:
        app: the ASGI application to guard.
        accepted: the Host names to answer, from :func:`accepted_hosts`; ``None`` answers any.
    """

    def __init__(self, app, *, accepted: frozenset[str] | None) -> None:
        self.app = app
        self.accepted = accepted

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await _refuse(send, *refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        """``(status, message)`` for an HTTP request to refuse, ``None`` for one to answer."""
        headers = _headers(scope)
        if len(headers.get("host", ())) > 1:
            return 400, "the request has several Host headers; send one."
        host = headers.get("host", [None])[0]
        problem = host_problem(host, self.accepted)
        if problem is not None:
            return 400, problem
        origin, fetch_site = headers.get("origin", [None])[0], headers.get("sec-fetch-site", [None])[0]
        problem = origin_problem(scope["method"], scope.get("scheme", "http"), host or "", origin, fetch_site)
        return None if problem is None else (403, problem)


def _headers(scope) -> dict[str, list[str]]:
    """An ASGI scope's headers: lower-case name -> values, in order."""
    headers: dict[str, list[str]] = {}
    for name, value in scope.get("headers", ()):
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return headers


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
