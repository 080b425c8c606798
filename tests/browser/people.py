"""People in the browser tests: a signed-in browser context per person, and signing in through the form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support import user_token

PASSWORD = "correct horse battery"  # the password tests.support.user_token gives the users it creates
TIMEOUT_MS = 10_000  # how long an expectation waits: pages here answer in milliseconds


def sign_in_page_exists(app: Flask) -> bool:
    """True once the app has the sign-in page (branch h/signin); until then people act through a token."""
    return any(rule.rule == "/sign-in" for rule in app.url_map.iter_rules())


def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    """Sign in through the real form, as a person would, and land on the page it leads to."""
    page.goto("/sign-in")
    page.get_by_label(re.compile(r"^user ?name", re.I)).fill(name)
    page.get_by_label(re.compile(r"^password", re.I)).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@dataclass
class People:
    """Opens a browser context per person of a test: ``people("wang", "engineer")`` is a page on which the
    user wang (created with those roles on first use) is signed in."""

    app: Flask
    browser: Browser
    context_args: dict[str, Any]
    pages: list[tuple[str, Page]]
    contexts: list[BrowserContext] = field(default_factory=list)

    def __call__(self, name: str, *roles: str) -> Page:
        with self.app.app_context():
            token = user_token(name, *roles)  # creates the user; the token is used until sign-in exists
        real_sign_in = sign_in_page_exists(self.app)
        headers = {} if real_sign_in else {"Authorization": f"Bearer {token}"}
        context = self.browser.new_context(**self.context_args, extra_http_headers=headers)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        self.pages.append((name, page))
        if real_sign_in:
            sign_in(page, name)
        return page

    def anonymous(self) -> Page:
        """A page of a visitor who has not signed in."""
        context = self.browser.new_context(**self.context_args)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        self.pages.append(("anonymous", page))
        return page

    def close(self) -> None:
        """Close every context opened for the test."""
        for context in self.contexts:
            context.close()
