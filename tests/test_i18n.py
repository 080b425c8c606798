"""The pages in Simplified Chinese and English: the catalogue covers every string, each page speaks the chosen
language, the choice of language (user, cookie, browser, default) and the switcher, record forms with their
Chinese texts, and the words the scripts write."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.auth import SYSTEM, Actor
from app.config import ConfigError, load_config
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.forms import FormDefinition, FormDefinitionError, render_form_fields, render_form_readonly
from app.i18n import TRANSLATIONS_DIR, compile_catalogues
from app.tasks.models import WorkItem
from app.tasks.service import forms
from app.users import service as users
from app.users.models import User, UserEvent
from tests.conftest import sign_in_session

ROOT = Path(__file__).resolve().parent.parent
PO = TRANSLATIONS_DIR / "zh" / "LC_MESSAGES" / "messages.po"
PASSWORD = "correct horse battery"  # what tests.support.user_token gives the users it creates
ADMIN = Actor("root-admin", frozenset({"admin"}))
STAFF_AND_ADMIN = ("agent", "engineer", "supervisor", "admin")
# English a Chinese page must not show anywhere: the words of the layout, lists, task and case pages, clocks.
ENGLISH = ("Worklist", "Sign out", "Signed in as", "Overdue", "overdue by", "due in", "My tasks", "All ready tasks",
           "Open tasks", "Deadline", "Assignee", "Priority", "Customer", "History", "Attachments", "Timers",
           "Users", "System time", "Times in", "Filter", "Claim", "Status", "Sign in", "Password", "Previous page",
           "No ready tasks", "Choose…", "Equipment", "Skip to the content", "After-sales")
CJK = re.compile(r"[\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def text_of(response: TestResponse) -> str:
    """The page's text, tags and scripts removed, whitespace collapsed."""
    html = re.sub(r"<script.*?</script>", " ", response.get_data(as_text=True), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def csrf_of(client: FlaskClient, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


# -- the catalogue ----------------------------------------------------------------------------------------------

def _extracted() -> set[str | tuple[str, ...]]:
    """Every message the code and templates mark for translation, read as `pybabel extract -F babel.cfg` does."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    found: set[str | tuple[str, ...]] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords):
        found.add(message)
    return found


def test_every_message_of_the_pages_has_a_chinese_translation() -> None:
    """A new English string on a page without its translation in zh/messages.po fails here (add it with
    `pybabel extract` + `pybabel update`, see the README, and translate it)."""
    with PO.open("rb") as po_file:
        catalogue = read_po(po_file, locale="zh")
    extracted = _extracted()
    assert len(extracted) > 300, "the extraction found too few messages: is babel.cfg right?"
    problems = []
    for msgid in sorted(extracted, key=str):
        entry = catalogue.get(msgid)
        strings = (entry.string if isinstance(entry.string, tuple) else (entry.string,)) if entry else ()
        if entry is None:
            problems.append(f"missing: {msgid!r}")
        elif not all(strings):
            problems.append(f"untranslated: {msgid!r}")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        else:
            wanted = set(PLACEHOLDER.findall(" ".join(msgid if isinstance(msgid, tuple) else (msgid,))))
            stray = {name for text in strings for name in PLACEHOLDER.findall(text)} - wanted - {"num"}
            if stray:
                problems.append(f"placeholders {sorted(stray)} not in the English: {msgid!r}")
    assert not problems, f"{len(problems)} messages of zh/messages.po need work:\n" + "\n".join(problems)


def test_the_compiled_catalogue_is_built_from_the_po_when_missing_or_older(tmp_path: Path) -> None:
    target = tmp_path / "zh" / "LC_MESSAGES"
    target.mkdir(parents=True)
    (target / "messages.po").write_bytes(PO.read_bytes())
    assert compile_catalogues(tmp_path) == [target / "messages.mo"]
    assert compile_catalogues(tmp_path) == []  # up to date: nothing to do
    os.utime(target / "messages.mo", (0, 0))  # older than the .po: compiled again
    assert compile_catalogues(tmp_path) == [target / "messages.mo"]
    assert b"\xe5\xb7\xa5\xe4\xbd\x9c\xe6\xb8\x85\xe5\x8d\x95" in (target / "messages.mo").read_bytes()  # 工作清单


def test_the_mo_file_is_not_kept_in_the_repository() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "*.mo" in ignored


# -- every page in Chinese --------------------------------------------------------------------------------------

@pytest.fixture
def world(deployed: Flask) -> dict[str, int]:
    """A fault case on its diagnosis task, and the demo customers and equipment."""
    from app.registry.service import seed_demo_data

    seed_demo_data()
    case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now() - timedelta(hours=30),
                     channel="phone", description="UPS alarm: battery fault, load on bypass")
    db.session.commit()
    task_id = db.session.scalar(select(WorkItem.id).where(WorkItem.case_id == case.id))
    assert task_id
    return {"case": case.id, "task": task_id}


def _user_in(signed_in: Callable[..., FlaskClient], name: str, locale: str | None) -> FlaskClient:
    client = signed_in(name, *STAFF_AND_ADMIN)
    if locale:
        user = db.session.scalar(select(User).where(User.username == name))
        assert user is not None
        user.locale = locale
        db.session.commit()
    return client


def _pages(world: dict[str, int]) -> dict[str, str]:
    return {"worklist": "/", "task page": f"/tasks/{world['task']}", "case page": f"/cases/{world['case']}",
            "cases list": "/cases", "new case": "/cases/new", "admin timers": "/admin/timers",
            "admin users": "/admin/users"}


def test_every_page_speaks_chinese_to_a_user_who_chose_it(world: dict[str, int],
                                                          signed_in: Callable[..., FlaskClient],
                                                          app: Flask) -> None:
    client = _user_in(signed_in, "li.na", "zh")
    problems = []
    for name, path in _pages(world).items():
        response = client.get(path)
        html = response.get_data(as_text=True)
        text = text_of(response)
        if response.status_code != 200:
            problems.append(f"{name}: {response.status_code}")
            continue
        if '<html lang="zh-Hans">' not in html:
            problems.append(f"{name}: not <html lang=zh-Hans>")
        if not CJK.search(text):
            problems.append(f"{name}: no Chinese")
        english = [word for word in ENGLISH if re.search(rf"\b{re.escape(word)}\b", text)]
        if english:
            problems.append(f"{name}: English words {english} in: {text[:400]}")
    anonymous = app.test_client()
    anonymous.set_cookie("servicecase_locale", "zh")
    sign_in = anonymous.get("/sign-in")
    english = [word for word in ENGLISH if re.search(rf"\b{re.escape(word)}\b", text_of(sign_in))]
    if english or '<html lang="zh-Hans">' not in sign_in.get_data(as_text=True):
        problems.append(f"sign-in: English words {english}")
    assert not problems, "\n".join(problems)


def test_an_english_user_sees_the_pages_as_before(world: dict[str, int], signed_in: Callable[..., FlaskClient]) -> None:
    client = _user_in(signed_in, "wang.lei", "en")
    for name, path in _pages(world).items():
        response = client.get(path)
        assert response.status_code == 200, name
        assert '<html lang="en">' in response.get_data(as_text=True), name
        assert not CJK.search(text_of(response).replace("中文", "")), f"{name} shows Chinese to an English user"
    text = text_of(client.get("/"))
    assert "Worklist" in text and "Sign out" in text and "overdue by" in text


def test_the_clock_words_reach_the_script_through_data_attributes(world: dict[str, int],
                                                                  signed_in: Callable[..., FlaskClient]) -> None:
    html = _user_in(signed_in, "li.na", "zh").get("/").get_data(as_text=True)
    assert 'data-span-minutes="{minutes} 分钟"' in html and 'data-span-hours="{hours} 小时"' in html
    assert 'data-span-days-hours="{days} 天 {hours} 小时"' in html
    assert 'data-text-due="还剩 {span}"' in html and 'data-text-overdue="已逾期 {span}"' in html
    assert re.search(r">已逾期 \d+ 小时( \d+ 分钟)?</span>", html), "the server-rendered clock is not in Chinese"
    case_page = _user_in(signed_in, "li.na", "zh").get(f"/cases/{world['case']}").get_data(as_text=True)
    assert 'data-text-nothing-open="没有进行中的环节。"' in case_page  # case-diagram.js
    new_case = _user_in(signed_in, "li.na", "zh").get("/cases/new").get_data(as_text=True)
    assert 'data-text-none="没有匹配的设备。' in new_case  # intake.js
    for script in ("clock.js", "case-diagram.js", "intake.js"):
        source = (ROOT / "app/web/static/js" / script).read_text()
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)
        sentences = [s for s in re.findall(r'"([^"]*)"', code)
                     if re.search(r"[A-Za-z]{3,} [a-z]{2,}", s) and "-" not in s]  # words, not CSS classes
        fallbacks = {"use strict", "less than 1 min"}  # clock.js's own fallback for a page without the body's words
        assert set(sentences) <= fallbacks, f"{script} writes English of its own: {sentences}"


def test_the_new_case_form_says_what_is_wrong_in_chinese(world: dict[str, int],
                                                        signed_in: Callable[..., FlaskClient]) -> None:
    client = _user_in(signed_in, "li.na", "zh")
    response = client.post("/cases/new", data={
        "csrf_token": csrf_of(client, "/cases/new"), "process": "fault_handling", "channel": "phone",
        "reported_at": "2026-99-99T08:00", "title": "x" * 201, "description": ""})
    assert response.status_code == 422
    text = text_of(response)
    assert "案件未创建。请修改下面标出的字段。" in text
    assert "请输入日期和时间，例如 2026-03-02 08:00。" in text  # the page's own message
    assert "请输入 1 到 200 个字符。" in text  # marshmallow's, translated
    assert "请描述客户报修的情况。" in text
    assert not re.search(r"Length must|Missing data|Enter a date", text)


# -- which language -----------------------------------------------------------------------------------------------

def _lang(response: TestResponse) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True))
    assert match
    return match.group(1)


def test_the_language_is_the_users_then_the_cookies_then_the_browsers_then_the_default(
        app: Flask, ctx: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    anonymous = app.test_client()
    assert _lang(anonymous.get("/sign-in")) == "en"  # nothing asked: the default
    assert _lang(anonymous.get("/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})) == "zh-Hans"
    assert _lang(anonymous.get("/sign-in", headers={"Accept-Language": "fr-FR, de"})) == "en"
    anonymous.set_cookie("servicecase_locale", "en")
    assert _lang(anonymous.get("/sign-in", headers={"Accept-Language": "zh-CN"})) == "en"  # the cookie first
    anonymous.set_cookie("servicecase_locale", "xx")  # a cookie with no language of ours counts for nothing
    assert _lang(anonymous.get("/sign-in", headers={"Accept-Language": "zh-Hans-CN"})) == "zh-Hans"
    monkeypatch.setitem(app.config, "DEFAULT_LOCALE", "zh")
    assert _lang(app.test_client().get("/sign-in")) == "zh-Hans"
    monkeypatch.setitem(app.config, "DEFAULT_LOCALE", "en")

    users.create_user(username="zhao", password=PASSWORD, roles=["engineer"], actor=ADMIN)
    db.session.commit()
    browser = app.test_client()
    sign_in_session(browser, "zhao", PASSWORD)
    browser.set_cookie("servicecase_locale", "en")
    assert _lang(browser.get("/", headers={"Accept-Language": "zh"})) == "en"  # no choice yet: the cookie
    users.set_locale(actor=users.actor_for(users.get_user(username="zhao")), locale="zh")
    db.session.commit()
    assert _lang(browser.get("/", headers={"Accept-Language": "en"})) == "zh-Hans"  # the user's own choice first


@pytest.mark.parametrize("value", ["fr", "", "ZH", 7])
def test_an_unknown_default_language_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="SERVICECASE_DEFAULT_LOCALE must be one of en, zh"):
        load_config({"ENV_NAME": "testing", "DEFAULT_LOCALE": value})


def test_an_anonymous_visitor_switches_with_a_cookie_only(app: Flask, ctx: Flask) -> None:
    browser = app.test_client()
    token = csrf_of(browser, "/sign-in")
    response = browser.post("/language", data={"locale": "zh", "next": "/sign-in", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/sign-in"
    cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("servicecase_locale="))
    assert cookie.startswith("servicecase_locale=zh;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = browser.get("/sign-in")
    assert _lang(page) == "zh-Hans" and "登录" in text_of(page)
    assert db.session.scalar(select(UserEvent.id).where(UserEvent.type == "user_locale_set")) is None


def test_a_signed_in_user_keeps_the_language_they_chose(app: Flask, ctx: Flask) -> None:
    users.create_user(username="chen", password=PASSWORD, roles=["agent"], actor=ADMIN)
    db.session.commit()
    browser = app.test_client()
    sign_in_session(browser, "chen", PASSWORD)
    response = browser.post("/language", data={"locale": "zh", "next": "/cases?status=open",
                                               "csrf_token": csrf_of(browser, "/")})
    assert response.status_code == 303 and response.headers["Location"] == "/cases?status=open"
    db.session.rollback()
    assert users.get_user(username="chen").locale == "zh"
    event = db.session.scalars(select(UserEvent).where(UserEvent.type == "user_locale_set")).one()
    assert (event.username, event.actor, event.payload) == ("chen", "chen", {"locale": "zh", "previous": None})
    other_browser = app.test_client()  # the choice is the user's, not this browser's
    sign_in_session(other_browser, "chen", PASSWORD)
    assert "工作清单" in text_of(other_browser.get("/"))
    browser.post("/language", data={"locale": "en", "csrf_token": csrf_of(browser, "/")})
    db.session.rollback()
    assert users.get_user(username="chen").locale == "en"
    assert "Worklist" in text_of(other_browser.get("/"))


@pytest.mark.parametrize("locale", ["fr", "", "zh-CN", "en;drop"])
def test_a_language_we_do_not_speak_is_a_400_naming_the_field(app: Flask, ctx: Flask, locale: str) -> None:
    browser = app.test_client()
    response = browser.post("/language", data={"locale": locale, "csrf_token": csrf_of(browser, "/sign-in")})
    assert response.status_code == 400
    assert "locale" in text_of(response) and "en, zh" in text_of(response)
    assert not any(value.startswith("servicecase_locale=") for value in response.headers.getlist("Set-Cookie"))


def test_the_switcher_needs_its_csrf_token(app: Flask) -> None:
    assert app.test_client().post("/language", data={"locale": "zh"}).status_code == 400


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_the_switcher_goes_back_only_to_a_page_of_this_site(app: Flask, target: str) -> None:
    browser = app.test_client()
    response = browser.post("/language", data={"locale": "zh", "next": target,
                                               "csrf_token": csrf_of(browser, "/sign-in")})
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_set_locale_refuses_a_language_and_records_nothing_twice(ctx: Flask) -> None:
    from app.errors import InvalidDataError

    users.create_user(username="sun", password=PASSWORD, roles=["auditor"], actor=ADMIN)
    actor = users.actor_for(users.get_user(username="sun"))
    with pytest.raises(InvalidDataError) as refused:
        users.set_locale(actor=actor, locale="de")
    assert refused.value.errors == {"locale": ["must be one of en, zh"]}
    users.set_locale(actor=actor, locale="zh")
    users.set_locale(actor=actor, locale="zh")
    assert db.session.scalars(select(UserEvent.type).where(UserEvent.username == "sun",
                                                           UserEvent.type == "user_locale_set")).all() == [
        "user_locale_set"]


# -- record forms ---------------------------------------------------------------------------------------------------

def test_record_forms_show_their_chinese_texts_and_fall_back_to_english(app: Flask) -> None:
    plain = FormDefinition.from_json({"type": "default", "id": "plain", "components": [
        {"type": "textfield", "key": "note", "label": "Note only in English"}]})
    with app.test_request_context("/"):
        app.preprocess_request()  # the request's hooks: Flask-Babel's state in g
        form = forms().get("fault_diagnosis")
        with force_locale("zh"):
            _form_in_chinese(form, plain)
        with force_locale("en"):
            html = str(render_form_fields(form, None, {"diagnosis": ["This field is required."]}))
            assert "Diagnosis" in html and "This field is required." in html and "诊断" not in html


def _form_in_chinese(form: FormDefinition, plain: FormDefinition) -> None:
    """The fault diagnosis form on a Chinese page: its own Chinese texts, the messages, the read-only record."""
    html = str(render_form_fields(form, None, {"diagnosis": ["This field is required."],
                                               "removal_target_hours": ["Enter a number of at most 720."]}))
    assert "诊断结论" in html and "一般故障（48 小时内排除）" in html and "保修期内" in html
    assert "此项为必填项。" in html and "请输入不大于 720 的数字。" in html and "请选择…" in html
    assert "Diagnosis" not in html and "Common fault" not in html
    record = str(render_form_readonly(form, {"diagnosis": "保险丝熔断", "fault_class": "common",
                                             "support_mode": "on_site", "parts_needed": True}))
    assert "一般故障" in record and "现场" in record and "是" in record
    assert "Note only in English" in str(render_form_fields(plain, None, None))


def test_every_shipped_form_has_chinese_for_every_text() -> None:
    problems = []

    def walk(where: str, item: dict[str, object]) -> None:
        for prop in ("label", "description", "text", "title"):
            if isinstance(item.get(prop), str) and item[prop] and not item.get(f"{prop}@zh"):
                problems.append(f"{where}: {prop} {item[prop]!r} has no {prop}@zh")
        for option in item.get("values") or []:  # type: ignore[union-attr]
            walk(f"{where} option", option)
        for child in item.get("components") or []:  # type: ignore[union-attr]
            walk(where, child)

    import json
    for path in sorted((ROOT / "forms").glob("*.form.json")):
        walk(path.name, json.loads(path.read_text()))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("component,message", [
    ({"label@fr": "Note"}, "'label@fr' names the language 'fr', which the pages do not speak"),
    ({"label@en": "Note"}, "the plain 'label' is the en text already"),
    ({"key@zh": "x"}, "unknown property 'key@zh'"),
    ({"label@zh": ""}, "'label@zh' must be non-empty text"),
    ({"values": [{"value": "a", "label": "A", "label@de": "A"}], "type": "select"},
     "values[0]: 'label@de' names the language 'de'"),
])
def test_form_definitions_refuse_unknown_languages(component: dict[str, object], message: str) -> None:
    source = {"type": "default", "id": "t", "title": "T", "title@zh": "表",
              "components": [{"type": "textfield", "key": "a", "label": "A", **component}]}
    with pytest.raises(FormDefinitionError) as refused:
        FormDefinition.from_json(source)
    assert message in str(refused.value)


def test_a_form_title_may_carry_chinese_and_only_chinese() -> None:
    source = {"type": "default", "id": "t", "title": "T", "title@zh": "表", "components": []}
    assert FormDefinition.from_json(source).source["title@zh"] == "表"
    with pytest.raises(FormDefinitionError, match="'title@ja' names the language 'ja'"):
        FormDefinition.from_json({**source, "title@ja": "表"})
    with pytest.raises(FormDefinitionError, match="only 'title' may carry a translation"):
        FormDefinition.from_json({**source, "id@zh": "表"})
