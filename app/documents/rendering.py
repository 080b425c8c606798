"""Documents from Jinja templates: one template per kind gives the HTML, and WeasyPrint prints that same HTML
as the PDF. The templates live in this package (app/documents/templates), not among the pages'."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext, ngettext
from jinja2 import Environment, PackageLoader, StrictUndefined


@functools.cache
def _environment() -> Environment:
    """The Jinja environment of the document templates (built on first use, not at import)."""
    env = Environment(loader=PackageLoader("app.documents", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      extensions=["jinja2.ext.i18n"])
    # The document's language is Flask-Babel's at the call (the caller forces the department's language).
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


def local_time(moment: datetime | None, zone: str) -> str:
    """A moment in the department's time zone, to the minute, with its offset: 2026-03-02 16:00 (UTC+08:00)."""
    if moment is None:
        return "—"
    local = moment.astimezone(ZoneInfo(zone))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


def render_html(template: str, context: Mapping[str, Any]) -> str:
    """The document's HTML: the kind's template rendered with ``context``."""
    return _environment().get_template(template).render(**context)


def html_to_pdf(html: str) -> bytes:
    """The same HTML printed as PDF (A4, fonts from the system: a CJK font such as WenQuanYi Micro Hei for
    Chinese names; see the README)."""
    import weasyprint  # heavy: loaded on first use, not when the app starts

    return bytes(weasyprint.HTML(string=html).write_pdf())
