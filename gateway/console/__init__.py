"""The web console for operators and IG leads (docs/console.md): server-rendered pages on
the gateway's own aiohttp app. ``setup_console`` mounts it."""

from gateway.console.routes import ROUTES, setup_console

__all__ = ["ROUTES", "setup_console"]
