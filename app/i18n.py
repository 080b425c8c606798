"""The languages of the pages: which there are, the compiled catalogue, and the current one.

The pages speak English and Simplified Chinese (Flask-Babel; app/web/i18n.py decides per request which). The
catalogue is ``app/translations/zh/LC_MESSAGES/messages.po``; its compiled ``.mo`` is not kept in the
repository but built from the ``.po`` when the app is created (and by ``dev.py``), whenever it is missing or
older. The JSON API and the services' own messages stay English.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from app.config import PROJECT_ROOT

LOCALES = ("en", "zh")  # what a user may choose; the first is the language the code is written in
LOCALE_NAMES = {"en": "English", "zh": "中文"}  # each language in its own words, as the switcher shows it
HTML_LANG = {"en": "en", "zh": "zh-Hans"}  # the <html lang> of each (BCP 47: Chinese in simplified script)
TRANSLATIONS_DIR = PROJECT_ROOT / "app" / "translations"
DOMAIN = "messages"


def compile_catalogues(directory: Path = TRANSLATIONS_DIR) -> list[Path]:
    """Compile every ``<locale>/LC_MESSAGES/messages.po`` under ``directory`` whose ``.mo`` is missing or older
    than it (with Babel, in this process); the ``.mo`` files written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po_path in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalogue = read_po(po_file, locale=po_path.parent.parent.name, domain=DOMAIN)
        partial = mo_path.with_suffix(f".mo.{os.getpid()}.partial")  # one per process: several may start at once
        try:
            with partial.open("wb") as mo_file:
                write_mo(mo_file, catalogue, use_fuzzy=False)
            partial.replace(mo_path)  # a concurrent reader sees the old file or the whole new one
        except OSError as exc:  # a read-only installation: its .mo must be built when it is installed
            logging.getLogger(__name__).warning("cannot compile %s (%s): its pages fall back to English",
                                                po_path, exc)
            continue
        written.append(mo_path)
    return written


def current_locale() -> str:
    """The language of the page being rendered (``en`` outside a request, or when Flask-Babel is not set up)."""
    from flask import current_app, has_app_context
    from flask_babel import get_locale

    if not has_app_context() or "babel" not in current_app.extensions:
        return LOCALES[0]
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LOCALES else LOCALES[0]
