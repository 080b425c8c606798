"""Search across cases: number, customer name, serial number, title and description; literal text; and on
PostgreSQL, proof that the trigram indexes carry the query on a database of realistic size."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import downgrade, upgrade
from sqlalchemy import event, inspect, select, text

from app.auth import SYSTEM, Actor
from app.cases.service import list_cases
from app.engine import ManualClock, now
from app.extensions import db
from app.flows.steps import open_case
from app.processes.models import ProcessVersion
from app.registry.models import Equipment
from app.registry.service import seed_demo_data

AGENT = Actor("amy", frozenset({"agent"}))  # cases.read, as every member of staff


@pytest.fixture
def seeded(deployed: Flask, clock: ManualClock) -> Flask:
    """Processes deployed, demo customers and equipment on file."""
    seed_demo_data()
    db.session.commit()
    return deployed


def _open(serial: str | None, description: str, title: str | None = None) -> str:
    equipment_id = db.session.scalar(select(Equipment.id).where(Equipment.serial_number == serial)) if serial else None
    case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now() - timedelta(hours=1),
                     channel="phone", description=description, title=title, equipment_id=equipment_id)
    db.session.commit()
    assert case.number
    return case.number


def _found(query: str) -> set[str]:
    items, total = list_cases(actor=AGENT, text=query)
    assert total == len(items)
    return {case.number for case in items}


def test_search_finds_cases_by_number_customer_serial_and_text(seeded: Flask) -> None:
    harbour = _open("EA99020K0001", "UPS alarm: rectifier fault", title="Rectifier alarm")
    railway = _open("EA33020K0932", "Battery string 2 swollen")
    nothing = _open(None, "Caller did not know the serial; 电池 overheating")

    assert _found(harbour) == {harbour}  # the number
    assert _found(harbour.lower()[-6:]) == {harbour}  # part of it, any case
    assert _found("harbour city") == {harbour}  # the customer's name
    assert _found("NORTHERN") == {railway}
    assert _found("20K0932") == {railway}  # part of the serial
    assert _found("rectifier") == {harbour}  # title and description
    assert _found("swollen") == {railway}
    assert _found("电池") == {nothing}  # non-ASCII text
    assert _found("no such thing") == set()
    assert _found("FH-2026") == {harbour, railway, nothing}


def test_search_text_is_literal_and_combines_with_the_other_filters(seeded: Flask) -> None:
    percent = _open("EA99020K0001", "Discount of 50% agreed")
    underscore = _open("EA99020K0001", "Error code E_42 on the display")
    backslash = _open("EA99020K0001", "Path C:\\ups\\log")
    _open("EA99020K0001", "Nothing special, 500 W load")

    assert _found("%") == {percent}
    assert _found("50%") == {percent}
    assert _found("_") == {underscore}
    assert _found("E_4") == {underscore}
    assert _found("\\") == {backslash}
    assert _found("'; drop table cases; --") == set()

    items, total = list_cases(actor=AGENT, text="EA99020K0001", status="closed")
    assert (items, total) == ([], 0)
    items, total = list_cases(actor=AGENT, text="EA99020K0001", page=2, per_page=3)
    assert total == 4 and len(items) == 1  # paginated over the matches, newest first


def test_the_trigram_migration_downgrades_and_upgrades_again(ctx: Flask) -> None:
    def trigram_indexes() -> set[str]:
        db.session.remove()
        names = set()
        for table in ("cases", "customers", "equipment"):
            names |= {str(index["name"]) for index in inspect(db.engine).get_indexes(table)
                      if "trgm" in str(index["name"])}
        return names

    expected = ({"ix_cases_number_trgm", "ix_cases_title_trgm", "ix_cases_description_trgm", "ix_customers_name_trgm",
                 "ix_customers_contact_name_trgm", "ix_customers_phone_trgm", "ix_equipment_serial_number_trgm"}
                if db.engine.dialect.name == "postgresql" else set())
    assert trigram_indexes() == expected
    try:
        downgrade(revision="intake_search-1")  # to the revision before this one
        assert trigram_indexes() == set()
    finally:
        upgrade()
    assert trigram_indexes() == expected


# ------------------------------------------------------------------------------- PostgreSQL: the index works


CASE_ROWS = 20_000


@pytest.fixture
def many_cases(deployed: Flask) -> Iterator[int]:
    """20,000 cheap cases (and 2,000 customers with 5,000 pieces of equipment), inserted in a few statements,
    then vacuumed and analysed; yields the number of rows."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the trigram index exists on PostgreSQL only")
    version_id = db.session.scalar(select(ProcessVersion.id).where(ProcessVersion.process_id == "fault_handling"))
    db.session.execute(text(
        "INSERT INTO customers (name, contact_name, phone, email, region, address, created_at) "
        "SELECT 'Customer ' || md5(g::text), 'Contact ' || g, '+86 10 ' || lpad(g::text, 8, '0'), '', 'North', '', "
        "now() "
        "FROM generate_series(1, 2000) g"))
    db.session.execute(text(
        "INSERT INTO equipment (customer_id, model, serial_number, site, region, dealer, monitored) "
        "SELECT (SELECT min(id) FROM customers) + g % 2000, 'EA990-200K', 'SN' || md5(g::text), '', 'North', '', false "
        "FROM generate_series(1, 5000) g"))
    db.session.execute(text(
        "INSERT INTO cases (number, process_id, process_version_id, process_version_number, status, title, "
        "description, channel, priority, customer_id, equipment_id, reported_at, opened_at, opened_by, updated_at, "
        "state_json, summary, event_count, lock_version) "
        "SELECT 'FH-2026-' || lpad(g::text, 6, '0'), 'fault_handling', :version, 1, "
        "CASE WHEN g % 3 = 0 THEN 'closed' ELSE 'open' END, 'UPS alarm ' || md5(g::text), "
        "'The customer reports ' || md5((g * 7)::text) || ' on the display', 'phone', 'normal', "
        "e.customer_id, e.id, now() - g * interval '1 minute', now() - g * interval '1 minute', 'bench', now(), "
        "'', '{}', 0, 0 "
        "FROM generate_series(1, :rows) g JOIN equipment e ON e.id = (SELECT min(id) FROM equipment) + g % 5000"),
        {"version": version_id, "rows": CASE_ROWS})
    db.session.commit()
    # What autovacuum does soon after a bulk insert: fresh statistics, and the GIN indexes' pending lists
    # merged (a plain ANALYZE leaves them, and the planner then rightly prices the indexes as slow).
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE cases, customers, equipment")
    yield CASE_ROWS


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _plans_of_search(query: str) -> list[list[dict[str, Any]]]:
    """Run list_cases(text=query), then EXPLAIN each SELECT it sent (with its parameters): the plan nodes."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "UNION" in statement.upper():
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        items, total = list_cases(actor=AGENT, text=query)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert statements, "list_cases sent no search query"
    plans = []
    connection = db.session.connection()
    for statement, parameters in statements:
        row = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
        document = row if isinstance(row, list) else json.loads(row)
        plans.append(list(_plan_nodes(document[0]["Plan"])))
    return plans


@pytest.mark.parametrize("query", ["FH-2026-012345", "5f3a", "reports 9e"])
def test_case_search_uses_the_trigram_index_on_postgresql(many_cases: int, query: str) -> None:
    plans = _plans_of_search(query)
    for nodes in plans:  # the count and the page
        scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
        used = {index for node, _, index in scans if node == "Bitmap Index Scan"}
        assert {"ix_cases_number_trgm", "ix_cases_title_trgm", "ix_cases_description_trgm"} <= used, scans
        assert not any(node == "Seq Scan" and relation == "cases" for node, relation, _ in scans), scans


def test_search_by_customer_or_serial_reaches_cases_through_indexes(many_cases: int) -> None:
    serial = db.session.scalar(text("SELECT serial_number FROM equipment ORDER BY id LIMIT 1"))
    customer = db.session.scalar(text("SELECT name FROM customers ORDER BY id LIMIT 1"))
    # The serial's trigram index; customers (2,000 here) the planner may as well read whole: either way
    # the cases are then found through their customer and equipment indexes, never by reading them all.
    for query, index in ((serial[2:14], "ix_equipment_serial_number_trgm"), (customer[9:21], None)):
        items, total = list_cases(actor=AGENT, text=query)
        assert total >= 1
        for nodes in _plans_of_search(query):
            scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
            if index:
                assert ("Bitmap Index Scan", None, index) in scans, scans
            assert any(name in ("ix_cases_customer_id", "ix_cases_equipment_id") for _, _, name in scans), scans
            assert not any(node == "Seq Scan" and relation == "cases" for node, relation, _ in scans), scans


def test_the_case_list_page_searches_by_customer_and_serial(seeded: Flask,
                                                           signed_in: Callable[..., FlaskClient]) -> None:
    harbour = _open("EA99020K0001", "UPS alarm")
    railway = _open("EA33020K0932", "Battery swollen")
    client = signed_in("amy", "agent")
    page = client.get("/cases", query_string={"text": "Northern Railway"}).get_data(as_text=True)
    assert railway in page and harbour not in page
    assert 'label for="text">Search: number, customer, serial or text</label>' in page
    page = client.get("/cases", query_string={"text": "99020k"}).get_data(as_text=True)
    assert harbour in page and railway not in page
    assert client.get("/cases", query_string={"text": "x" * 1000}).status_code == 400
    assert client.get("/cases", query_string={"text": "a\x00b"}).status_code == 400
