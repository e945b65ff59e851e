"""Small server-side SVG charts drawn from numbers only (so they are safe to mark as
markup: nothing from a message or a request reaches them except numbers and a fixed label)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def sparkline(values: Sequence[float], *, label: str, width: int = 160, height: int = 36) -> Markup:
    """A line of ``values`` (oldest first) scaled to the box, with the label as its
    accessible name. Fewer than two values: a flat baseline."""
    title = escape(label)
    pad = 2
    top = max(values) if values else 0.0
    if len(values) < 2:
        points = f"{pad},{height - pad} {width - pad},{height - pad}"
    else:
        step = (width - 2 * pad) / (len(values) - 1)
        scale = (height - 2 * pad) / top if top > 0 else 0.0
        points = " ".join(
            f"{pad + i * step:.1f},{height - pad - v * scale:.1f}" for i, v in enumerate(values)
        )
    return Markup(  # noqa: S704 - built from numbers and an escaped label only
        f'<svg class="spark" role="img" aria-label="{title}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{title}</title>"
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/>'
        f'<text x="{width - pad}" y="11" text-anchor="end" font-size="10">max {top:.3g}</text>'
        "</svg>"
    )
