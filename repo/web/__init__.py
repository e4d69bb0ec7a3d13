"""`dsrepo serve`: a read-only web app to look at a project (items, overlays, revisions, stats).

The stack is Flask with Jinja2 templates (see `app`): server-rendered HTML, no JavaScript.
The app binds to loopback unless told otherwise with `allow_remote`, reads through a connection
that cannot write, and caches its pictures in the project folder (see `pictures`). Flask is in
the optional `viz` extra; without it `serve` says what to install.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from repo.errors import OptionError, UnsupportedError
from repo.project import Project

INSTALL_HINT = "pip install 'dsrepo[viz]'"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse to listen beyond this machine unless asked to in so many words."""
    if not allow_remote and not is_loopback(host):
        raise OptionError(
            f"--host {host} is not a loopback address: other machines could read the project; "
            "pass --allow-remote to serve it to them on purpose"
        )


def trusted_hosts(host: str, allow_remote: bool) -> list[str] | None:
    """Host headers a loopback server answers (a defence against DNS rebinding); any, when remote."""
    if allow_remote:
        return None
    return sorted({host.strip("[]"), "127.0.0.1", "localhost", "::1"})


def serve(
    project: Project, host: str = "127.0.0.1", port: int = 8765, *, allow_remote: bool = False, quiet: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the project until interrupted; `announce` receives the address (port 0: any free port)."""
    check_host(host, allow_remote)
    try:
        from werkzeug.serving import make_server

        from repo.web.app import create_app
    except ImportError:
        raise UnsupportedError(f"dsrepo serve needs Flask, which is not installed; {INSTALL_HINT}") from None
    app = create_app(project, trusted_hosts(host, allow_remote))
    logging.getLogger("werkzeug").setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise OptionError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    shown = f"[{host}]" if ":" in host else host
    announce(f"serving {project.directory} read-only at http://{shown}:{server.server_port}/ (Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
