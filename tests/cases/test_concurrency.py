"""One writer per case, proved with real concurrent HTTP clients against a live server.

Runs on whatever database the ``app`` fixture uses: SQLite by default, PostgreSQL when
TEST_DATABASE_URL is set (CI runs the suite both ways). On SQLite a request that meets the one writer
may be answered 503 "busy"; such a request is retried, and must then see the real outcome (409).
PostgreSQL has row locks and must never answer 503.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from app.audit.models import CaseEvent
from app.cases.models import Case
from app.engine import ManualClock
from app.extensions import db
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.tasks.models import WorkItem
from tests.support import WORKING_ROLES, user_token

CLIENTS = 8
RETRIES = 20
DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}
REMOTE_REPAIRED = {"remote_channel": "network", "work_performed": "Reset the rectifier", "remote_result": "repaired"}

pytestmark = pytest.mark.concurrency


def _body(raw: bytes) -> Any:
    """JSON, or the raw text of a non-JSON answer (an unhandled error page) so tests can report it."""
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")[:300]}


@dataclass
class Reply:
    """The final answer one client got, and every status it saw on the way."""

    status: int
    body: dict[str, Any]
    seen: list[int]


class Server:
    """The test app served over real HTTP by a threaded werkzeug server."""

    def __init__(self, app: Flask) -> None:
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
        self.tokens: dict[str, str] = {}

    def sign_in(self, *actors: str) -> None:
        """Give each actor a real user and API token (in the test's app context, before any race): ``eng-*``
        users hold only the engineer role (no supervisor's take-over), the others every role but auditor."""
        for actor in actors:
            if actor not in self.tokens:
                self.tokens[actor] = user_token(actor, *(("engineer",) if actor.startswith("eng-") else WORKING_ROLES))

    def request(self, method: str, path: str, body: Any = None, *, actor: str = "tester") -> tuple[int, Any]:
        """One HTTP request on its own connection, with ``actor``'s token (see ``sign_in``)."""
        if actor not in self.tokens:
            assert threading.current_thread() is threading.main_thread(), f"sign {actor} in before the race"
            self.sign_in(actor)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.tokens[actor]}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, _body(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _body(error.read())

    def post(self, path: str, body: Any, *, actor: str = "tester") -> Reply:
        """POST, retrying while SQLite answers 503 busy (never retried on PostgreSQL)."""
        seen: list[int] = []
        for _ in range(RETRIES):
            status, payload = self.request("POST", path, body, actor=actor)
            seen.append(status)
            if status != 503 or not self.sqlite:
                return Reply(status, payload, seen)
            assert "busy" in payload["message"]
        raise AssertionError(f"{path} still busy after {RETRIES} attempts: {seen}")

    def race(self, calls: list[tuple[str, Any, str]]) -> list[Reply]:
        """Send the POSTs from one thread each, released together by a barrier."""
        self.sign_in(*(actor for _, _, actor in calls))
        barrier = threading.Barrier(len(calls))
        replies: list[Reply | BaseException | None] = [None] * len(calls)

        def client(index: int, path: str, body: Any, actor: str) -> None:
            try:
                barrier.wait(timeout=30)
                replies[index] = self.post(path, body, actor=actor)
            except BaseException as exc:  # noqa: BLE001  (reported in the main thread)
                replies[index] = exc

        threads = [threading.Thread(target=client, args=(i, *call)) for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
            assert not thread.is_alive(), "a client hung"
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies  # type: ignore[return-value]


@pytest.fixture
def server(deployed: Flask, clock: ManualClock) -> Iterator[Server]:
    """A live server over the test app, with the processes deployed and demo data in place."""
    seed_demo_data()
    db.session.commit()
    live = Server(deployed)
    live.thread.start()
    yield live
    live.httpd.shutdown()
    live.thread.join(timeout=30)
    live.httpd.server_close()


def open_fault_case(server: Server, clock: ManualClock) -> dict[str, Any]:
    """Open a warranty fault case over HTTP; its first task is diagnose_fault."""
    equipment = db.session.scalar(select(Equipment.id).where(Equipment.serial_number == "EA99020K0001"))
    status, case = server.request("POST", "/api/cases", {
        "process": "fault_handling", "reported_at": (clock.now() - timedelta(hours=1)).isoformat(),
        "channel": "phone", "description": "UPS alarm", "equipment_id": equipment})
    assert status == 201, case
    return case


@dataclass(frozen=True)
class Stored:
    """What the database holds about one case."""

    lock_version: int
    event_count: int
    seqs: list[int]
    event_types: list[str]
    completed_by: list[tuple[str, str | None]]
    ready: list[str]
    work_items: int


def stored(case_id: int) -> Stored:
    """Read the case afresh (other connections wrote it)."""
    db.session.rollback()
    case = db.session.scalar(select(Case).where(Case.id == case_id).execution_options(populate_existing=True))
    events = list(db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id)
                                     .order_by(CaseEvent.seq)))
    items = list(db.session.scalars(select(WorkItem).where(WorkItem.case_id == case_id).order_by(WorkItem.id)))
    return Stored(
        lock_version=case.lock_version, event_count=case.event_count, seqs=[e.seq for e in events],
        event_types=[e.type for e in events],
        completed_by=[(e.payload["task_spec"], e.actor) for e in events if e.type == "task_completed"],
        ready=sorted(w.task_spec for w in items if w.state == "ready"), work_items=len(items))


def store_increment(server: Server, clock: ManualClock, *, steps: int = 1, clock_moves: bool = True) -> int:
    """How far one uncontended completion (of step ``steps``) moves lock_version, on a control case
    worked the same way as the raced one."""
    case = open_fault_case(server, clock)
    for step_data in (DIAGNOSIS, REMOTE_REPAIRED)[:steps]:
        if clock_moves:
            clock.advance(timedelta(minutes=5))
        before = stored(case["id"]).lock_version
        task = server.request("GET", f"/api/tasks?case_id={case['id']}")[1]["items"][0]
        assert server.post(f"/api/tasks/{task['id']}/complete", {"data": step_data}).status == 200
    return stored(case["id"]).lock_version - before


def _assert_one_winner(server: Server, replies: list[Reply]) -> Reply:
    """Exactly one 200 and every other client told 409 (after retrying SQLite's 503 busy answers)."""
    seen = [r.seen for r in replies]
    assert [r.status for r in replies].count(200) == 1, seen
    allowed = {200, 409, 503} if server.sqlite else {200, 409}
    assert {s for r in replies for s in r.seen} <= allowed, seen
    for reply in replies:
        if reply.status == 409:
            assert "no longer ready" in reply.body["message"] or "changed by someone else" in reply.body["message"]
    return next(r for r in replies if r.status == 200)


# -- one case, many writers ----------------------------------------------------------------------------
def _race_one_task(server: Server, clock: ManualClock, *, clock_moves: bool) -> tuple[list[Reply], bool]:
    """Eight engineers submit the same diagnosis at once; check what is stored. Returns the replies and
    whether any reply was a 500 (never expected)."""
    increment = store_increment(server, clock, clock_moves=clock_moves)
    case = open_fault_case(server, clock)
    task = case["open_tasks"][0]
    if clock_moves:
        clock.advance(timedelta(minutes=5))  # the engineers answer a little after the case was opened
    before = stored(case["id"])

    replies = server.race([(f"/api/tasks/{task['id']}/complete", {"data": DIAGNOSIS}, f"engineer-{i}")
                           for i in range(CLIENTS)])

    winner = _assert_one_winner(server, replies)
    assert [t["task_spec"] for t in winner.body["open_tasks"]] == ["repair_remotely"]
    after = stored(case["id"])
    winner_actor = f"engineer-{[r.status for r in replies].index(200)}"
    assert after.completed_by == [("diagnose_fault", winner_actor)]  # exactly one task_completed event
    assert after.ready == ["repair_remotely"]  # exactly one next work item
    assert after.work_items == before.work_items + 1
    assert after.seqs == list(range(1, after.event_count + 1))  # no gaps, no duplicates
    assert after.event_types[:len(before.event_types)] == before.event_types
    # Exactly one store happened: the version moved as far as one uncontended completion moves it.
    assert after.lock_version - before.lock_version == increment
    return replies, any(r.status == 500 for r in replies)


def test_concurrent_completions_of_one_task_have_exactly_one_winner(server: Server, clock: ManualClock) -> None:
    replies, _ = _race_one_task(server, clock, clock_moves=True)
    assert sorted(r.status for r in replies) == [200] + [409] * (CLIENTS - 1)


def test_concurrent_completions_in_the_same_clock_tick_have_exactly_one_winner(server: Server,
                                                                               clock: ManualClock) -> None:
    # The clock stands still from opening to the race (a stopped test clock; or a store and a race
    # within one clock tick). What is stored must still be right, and every loser must get 409.
    replies, _ = _race_one_task(server, clock, clock_moves=False)
    assert sorted(r.status for r in replies) == [200] + [409] * (CLIENTS - 1)


def test_concurrent_completions_of_tasks_of_different_cases_do_not_conflict(server: Server,
                                                                            clock: ManualClock) -> None:
    first = open_fault_case(server, clock)
    second = open_fault_case(server, clock)
    clock.advance(timedelta(minutes=5))
    diagnosed = server.post(f"/api/tasks/{second['open_tasks'][0]['id']}/complete", {"data": DIAGNOSIS})
    assert diagnosed.status == 200
    clock.advance(timedelta(minutes=5))
    # Two different tasks: the first case's diagnosis and the second case's remote repair.
    calls = [(f"/api/tasks/{first['open_tasks'][0]['id']}/complete", {"data": DIAGNOSIS}, "ann"),
             (f"/api/tasks/{diagnosed.body['open_tasks'][0]['id']}/complete", {"data": REMOTE_REPAIRED}, "ben")]
    before = {case["id"]: stored(case["id"]) for case in (first, second)}

    replies = server.race(calls)

    assert [r.status for r in replies] == [200, 200], [r.seen for r in replies]
    assert stored(first["id"]).completed_by == [("diagnose_fault", "ann")]
    assert stored(second["id"]).completed_by == [("diagnose_fault", "tester"), ("repair_remotely", "ben")]
    assert stored(first["id"]).ready == ["repair_remotely"]
    assert stored(second["id"]).ready == ["write_processing_report"]
    increments = {first["id"]: store_increment(server, clock),
                  second["id"]: store_increment(server, clock, steps=2)}
    for case_id, increment in increments.items():
        assert stored(case_id).lock_version - before[case_id].lock_version == increment


def test_many_writers_on_two_cases_at_once_give_one_winner_per_case(server: Server, clock: ManualClock) -> None:
    cases = [open_fault_case(server, clock) for _ in range(2)]
    clock.advance(timedelta(minutes=5))
    calls = [(f"/api/tasks/{case['open_tasks'][0]['id']}/complete", {"data": DIAGNOSIS}, f"c{n}-engineer-{i}")
             for i in range(CLIENTS // 2) for n, case in enumerate(cases)]

    replies = server.race(calls)

    for n, case in enumerate(cases):
        mine = [r for (_, _, actor), r in zip(calls, replies, strict=True) if actor.startswith(f"c{n}-")]
        _assert_one_winner(server, mine)
        after = stored(case["id"])
        assert len(after.completed_by) == 1 and after.completed_by[0][1].startswith(f"c{n}-")
        assert after.ready == ["repair_remotely"]
        assert after.seqs == list(range(1, after.event_count + 1))
    assert sorted(r.status for r in replies) == [200, 200] + [409] * (len(calls) - 2)


def test_one_store_advances_lock_version_once_per_write(server: Server, clock: ManualClock) -> None:
    # On SQLite, lock_case takes the database write lock with a version-checked UPDATE before any
    # work (there are no row locks), and the store writes the case again: two steps per completion.
    # On PostgreSQL, FOR UPDATE takes the lock and only the store writes the case.
    assert store_increment(server, clock) == (2 if server.sqlite else 1)


# -- claim and complete racing each other: the case lock first, then the work item --------------------------
# Each race is run many times: a client that waits for the case lock must then read the work item as the
# winner left it (on PostgreSQL a statement that waited for a row lock still sees other rows as they were
# when it started, so reading both in one statement let two claims both succeed).
REPEATS = 50


def _history(case_id: int) -> list[CaseEvent]:
    db.session.rollback()  # other connections wrote it
    return list(db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
                                   .execution_options(populate_existing=True)))


def _item(item_id: int) -> WorkItem:
    db.session.rollback()
    item = db.session.scalar(select(WorkItem).where(WorkItem.id == item_id).execution_options(populate_existing=True))
    assert item is not None
    return item


def _statuses(server: Server, replies: list[Reply]) -> list[int]:
    """The final statuses; on the way only 409 (and, on SQLite, 503 busy, retried) may have been seen."""
    allowed = {200, 409, 503} if server.sqlite else {200, 409}
    assert {s for r in replies for s in r.seen} <= allowed, [(r.seen, r.body) for r in replies]
    return [r.status for r in replies]


def test_two_engineers_claiming_one_task_get_one_200_and_one_409_naming_the_winner(
        server: Server, clock: ManualClock) -> None:
    outcomes = []
    for _ in range(REPEATS):
        case = open_fault_case(server, clock)
        task_id = case["open_tasks"][0]["id"]
        replies = server.race([(f"/api/tasks/{task_id}/claim", None, "eng-ann"),
                               (f"/api/tasks/{task_id}/claim", None, "eng-ben")])
        statuses = _statuses(server, replies)
        assert sorted(statuses) == [200, 409], [(r.seen, r.body) for r in replies]
        winner = ("eng-ann", "eng-ben")[statuses.index(200)]
        loser = replies[statuses.index(409)]
        assert loser.body["message"] == f"task {task_id} is already claimed by {winner}", loser.body
        claims = [e for e in _history(case["id"]) if e.type == "task_claimed"]
        assert [(e.actor, e.payload["previous"]) for e in claims] == [(winner, None)]
        assert _item(task_id).assignee == winner
        outcomes.append(winner)
    assert len(outcomes) == REPEATS


def test_two_supervisors_claiming_one_task_record_the_real_previous_assignee(
        server: Server, clock: ManualClock) -> None:
    # Supervisors may take a claimed task over: both claims succeed, one after the other, and the
    # second one's history names the first as the previous assignee (never "previous: None" twice).
    for _ in range(REPEATS):
        case = open_fault_case(server, clock)
        task_id = case["open_tasks"][0]["id"]
        replies = server.race([(f"/api/tasks/{task_id}/claim", None, "sue"),
                               (f"/api/tasks/{task_id}/claim", None, "sam")])
        assert _statuses(server, replies) == [200, 200], [(r.seen, r.body) for r in replies]
        claims = [(e.actor, e.payload["previous"]) for e in _history(case["id"]) if e.type == "task_claimed"]
        assert len(claims) == 2, claims
        (first, none), (second, previous) = claims
        assert none is None and previous == first and {first, second} == {"sue", "sam"}, claims
        assert _item(task_id).assignee == second


def test_two_engineers_completing_one_task_get_one_200_and_one_409(
        server: Server, clock: ManualClock) -> None:
    for _ in range(REPEATS):
        case = open_fault_case(server, clock)
        task_id = case["open_tasks"][0]["id"]
        replies = server.race([(f"/api/tasks/{task_id}/complete", {"data": DIAGNOSIS}, "eng-ann"),
                               (f"/api/tasks/{task_id}/complete", {"data": DIAGNOSIS}, "eng-ben")])
        statuses = _statuses(server, replies)
        assert sorted(statuses) == [200, 409], [(r.seen, r.body) for r in replies]
        winner = ("eng-ann", "eng-ben")[statuses.index(200)]
        assert replies[statuses.index(409)].body["message"] == f"task {task_id} is completed, no longer ready"
        history = _history(case["id"])
        assert [(e.actor, e.payload["work_item_id"]) for e in history if e.type == "task_completed"] == \
            [(winner, task_id)]
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        item = _item(task_id)
        assert (item.state, item.completed_by) == ("completed", winner)


def test_a_claim_racing_a_completion_never_claims_a_finished_task(
        server: Server, clock: ManualClock) -> None:
    seen = {"claim won": 0, "complete won": 0}
    for _ in range(REPEATS):
        case = open_fault_case(server, clock)
        task_id = case["open_tasks"][0]["id"]
        claim, complete = server.race([(f"/api/tasks/{task_id}/claim", None, "eng-ann"),
                                       (f"/api/tasks/{task_id}/complete", {"data": DIAGNOSIS}, "eng-ben")])
        assert sorted(_statuses(server, [claim, complete])) == [200, 409], [(r.seen, r.body) for r in (claim, complete)]
        types = [(e.type, e.actor) for e in _history(case["id"]) if e.type in ("task_claimed", "task_completed")]
        item = _item(task_id)
        if claim.status == 200:  # ann holds it: ben (no supervisor) may not complete her task
            assert complete.body["message"] == f"task {task_id} is claimed by eng-ann"
            assert types == [("task_claimed", "eng-ann")]
            assert (item.state, item.assignee) == ("ready", "eng-ann")
            seen["claim won"] += 1
        else:  # ben completed it first: the claim meets a finished task
            assert claim.body["message"] == f"task {task_id} is completed, no longer ready"
            assert types == [("task_completed", "eng-ben")]
            assert (item.state, item.completed_by, item.assignee) == ("completed", "eng-ben", "eng-ben")
            seen["complete won"] += 1
    assert sum(seen.values()) == REPEATS
    print(f"\nclaim racing completion, {REPEATS} races: {seen}")  # the figures of the closing note (-s)
