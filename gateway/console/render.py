"""Server-rendered pages: Jinja2 templates with autoescape on, loaded once at start-up.

Contracts:

* Autoescape is on for every template; nothing from a request or the store is marked safe
  except the SVG charts this package draws from numbers (``charts``).
* Templates are read from disk once, in ``load_templates`` (start-up), never per request:
  a file read on the event loop would stall every partner's traffic.
* Every console response carries ``Cache-Control: no-store`` and a strict
  ``Content-Security-Policy`` (scripts and styles from the console's own static files only).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def when(epoch: float | str | None) -> str:
    """Epoch seconds (or an ISO string) as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if epoch is None or epoch == "":
        return "—"
    if isinstance(epoch, str):
        return epoch.replace("T", " ")[:19]
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def load_templates() -> jinja2.Environment:
    files = {p.relative_to(TEMPLATES).as_posix(): p.read_text("utf-8") for p in TEMPLATES.rglob("*.html")}
    env = jinja2.Environment(
        loader=jinja2.DictLoader(files),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["age"] = age
    return env


def load_static() -> dict[str, tuple[bytes, str]]:
    types = {".css": "text/css", ".js": "text/javascript"}
    return {p.name: (p.read_bytes(), types[p.suffix]) for p in STATIC.iterdir() if p.suffix in types}


def secure(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def html(env: jinja2.Environment, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
    body = env.get_template(name).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
