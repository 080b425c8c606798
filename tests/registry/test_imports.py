"""CSV imports of customers, equipment and stock (issue 8), through the API and the CLI on the real
database: good rows are kept, each bad row is reported with its line and column, importing the same file
again changes nothing, a wrong header or a file that is not UTF-8 is refused naming the file with nothing
saved, and the CLI's exit status says whether rows were refused."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.auth import SYSTEM
from app.engine import ManualClock
from app.extensions import db
from app.registry.models import Customer, CustomerEvent, Equipment, EquipmentEvent
from app.stock import service as stock
from app.stock.models import Part, StockLevel, StockMovement

Client = Callable[..., FlaskClient]

CUSTOMERS = ("name,region,contact_name,phone,email,address\n"
             "Harbour City Data Centre,South,Li Wei,+86 20 5550 0101,ops@harbourdc.example,1 Quay Road\n"
             ",South,Nobody,,,\n"  # line 3: no name
             "West Lake Hospital,East,Chen Jing,+86 571 5550 0303,facilities@wlh.example,\n"
             "Harbour City Data Centre,south,Again,,,\n"  # line 5: the same customer as line 2
             # line 6: a cell too many
             "Northern Railway,North,Zhang Min,+86 10 5550 0202,signals@nrs.example,x,extra\n")
EQUIPMENT = ("serial_number,model,customer,region,site,installed_on,warranty_ends_on,dealer,monitored\n"
             "EA99020K0001,EA990-200K,Harbour City Data Centre,South,\"Hall A, row 3\",2024-03-01,2027-02-28,"
             "Pearl Power Systems,yes\n"
             "EA33010K0215,EA330-10K,West Lake Hospital,East,Ward 4,,,,no\n"
             "EA1,EA330-10K,Unknown Customer,East,,,,,no\n"  # line 4: no such customer
             "EA2,EA330-10K,West Lake Hospital,East,,2024-13-01,,,maybe\n"  # line 5: bad date, bad flag
             "EA3,EA330-10K,West Lake Hospital,East,,2024-03-01,2023-03-01,,\n"  # line 6: warranty before install
             "EA99020K0001,EA990-200K,Harbour City Data Centre,South,,,,,\n")  # line 7: serial twice
STOCK = ("region,part_number,part_name,on_hand\n"
         "South,BAT-12V-100,Battery 12 V 100 Ah,12\n"
         "South,FUS-125A,,4\n"  # line 3: a part the catalogue holds: no name needed
         "Nowhere,FUS-125A,,1\n"  # line 4: no warehouse
         "South,NEW-1,,1\n"  # line 5: a new part without a name
         "South,FUS-125A,,x\n")  # line 6: not a number


def upload(client: FlaskClient, kind: str, content: str | bytes) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return client.post(f"/api/registry/import/{kind}", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), f"{kind}.csv")})


def count(model: Any) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def admin(ctx: Flask, clock: ManualClock, signed_in: Client) -> FlaskClient:
    return signed_in("ada", "admin")


def test_customers_good_rows_are_kept_bad_rows_named_and_a_second_import_changes_nothing(admin: FlaskClient) -> None:
    first = upload(admin, "customers", CUSTOMERS)
    assert first.status_code == 200, first.get_json()
    report = first.get_json()
    assert (report["created"], report["updated"], report["unchanged"], report["refused_rows"]) == (2, 0, 0, 3)
    assert report["errors"] == [
        {"row": 3, "column": "name", "message": "is required"},
        {"row": 5, "column": "name", "message": "the customer Harbour City Data Centre of region south is in line 2 "
                                                "already"},
        {"row": 6, "column": "", "message": "has more cells than the header has columns"}]
    assert count(Customer) == 2
    again = upload(admin, "customers", CUSTOMERS).get_json()
    assert (again["created"], again["updated"], again["unchanged"], again["refused_rows"]) == (0, 0, 2, 3)
    assert count(CustomerEvent) == 2
    changed = upload(admin, "customers", "name,region,phone\nWest Lake Hospital,East,+86 571 5550 9999\n").get_json()
    assert (changed["created"], changed["updated"], changed["errors"]) == (0, 1, [])
    db.session.rollback()
    events = db.session.scalars(select(CustomerEvent).order_by(CustomerEvent.id)).all()
    assert [(e.type, e.actor) for e in events] == [("registered", "ada"), ("registered", "ada"), ("updated", "ada")]
    assert events[-1].payload["changes"] == {"phone": ["+86 571 5550 0303", "+86 571 5550 9999"]}


def test_equipment_is_keyed_by_serial_and_needs_its_customer(admin: FlaskClient) -> None:
    assert upload(admin, "customers", CUSTOMERS).status_code == 200
    report = upload(admin, "equipment", EQUIPMENT).get_json()
    assert (report["created"], report["updated"], report["unchanged"]) == (2, 0, 0)
    assert [(e["row"], e["column"]) for e in report["errors"]] == [
        (4, "customer"), (5, "installed_on"), (5, "monitored"), (6, "warranty_ends_on"), (7, "serial_number")]
    assert report["refused_rows"] == 4
    db.session.rollback()
    hall = db.session.scalar(select(Equipment).where(Equipment.serial_number == "EA99020K0001"))
    assert hall is not None
    assert (hall.site, hall.installed_on, hall.warranty_ends_on, hall.dealer, hall.monitored, hall.status) == (
        "Hall A, row 3", date(2024, 3, 1), date(2027, 2, 28), "Pearl Power Systems", True, "in_service")
    assert hall.customer.name == "Harbour City Data Centre"
    again = upload(admin, "equipment", EQUIPMENT).get_json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    moved = upload(admin, "equipment", "serial_number,model,customer,region,site\n"
                                       "EA33010K0215,EA330-10K,West Lake Hospital,East,Ward 5\n").get_json()
    assert (moved["updated"], moved["errors"]) == (1, [])
    db.session.rollback()
    assert [(e.type, e.actor) for e in db.session.scalars(select(EquipmentEvent).order_by(EquipmentEvent.id))] == [
        ("registered", "ada"), ("registered", "ada"), ("updated", "ada")]


def test_stock_is_a_stocktake_creating_missing_parts(admin: FlaskClient) -> None:
    stock.create_warehouse(actor=SYSTEM, code="S", name="South warehouse", region="South")
    stock.create_part(actor=SYSTEM, part_number="FUS-125A", name="Fuse 125 A")
    db.session.commit()
    report = upload(admin, "stock", STOCK).get_json()
    assert (report["created"], report["updated"], report["unchanged"]) == (2, 0, 0)
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(4, "region"), (5, "part_name"), (6, "on_hand")]
    db.session.rollback()
    levels = {(lv.part.part_number, lv.on_hand) for lv in db.session.scalars(select(StockLevel))}
    assert levels == {("BAT-12V-100", 12), ("FUS-125A", 4)}
    assert count(Part) == 2
    movements = count(StockMovement)
    again = upload(admin, "stock", STOCK).get_json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert count(StockMovement) == movements
    recount = upload(admin, "stock", "region,part_number,part_name,on_hand\nSouth,FUS-125A,,3\n").get_json()
    assert (recount["updated"], recount["errors"]) == (1, [])
    db.session.rollback()
    last = db.session.scalars(select(StockMovement).order_by(StockMovement.id.desc())).first()
    assert last is not None and (last.kind, last.quantity, last.actor, last.note) == ("adjusted", -1, "ada",
                                                                                      "stocktake import")


def test_a_wrong_header_or_a_file_that_is_not_utf8_is_refused_naming_the_file(admin: FlaskClient,
                                                                              signed_in: Client) -> None:
    missing = upload(admin, "customers", "name,phone\nA,1\n")
    assert missing.status_code == 422
    assert missing.get_json()["errors"] == {"file": ["missing column region"]}
    unknown = upload(admin, "equipment", "serial_number,model,customer,region,colour\n")
    assert unknown.get_json()["errors"] == {"file": ["unknown column 'colour'"]}
    latin1 = upload(admin, "customers", "name,region\nCaf\xe9,South\n".encode("latin-1"))
    assert latin1.status_code == 422
    assert latin1.get_json()["errors"] == {"file": ["line 2 is not UTF-8"]}
    assert upload(admin, "customers", b"").get_json()["errors"]["file"][0].startswith("has no header line")
    assert count(Customer) == 0
    bom = upload(admin, "customers", "\ufeffname,region\nCafé Tower,South\n".encode())
    assert bom.get_json()["created"] == 1
    assert admin.post("/api/registry/import/customers", json={"rows": []}).status_code == 415
    no_file = admin.post("/api/registry/import/customers", content_type="multipart/form-data", data={"x": "1"})
    assert no_file.status_code == 422 and set(no_file.get_json()["errors"]) == {"file", "x"}
    keeper = signed_in("zhao", "warehouse")
    assert upload(keeper, "customers", "name,region\nA,South\n").status_code == 403
    assert upload(keeper, "stock", "region,part_number,part_name,on_hand\n").status_code == 200
    assert upload(signed_in("wang", "engineer"), "stock", "region,part_number,part_name,on_hand\n").status_code == 403
    assert admin.post("/api/registry/import/users", content_type="multipart/form-data",
                      data={"file": (io.BytesIO(b"x"), "x.csv")}).status_code == 404


def test_the_cli_exits_1_when_rows_were_refused_and_0_otherwise(app: Flask, tmp_path: Path) -> None:
    good, bad, broken = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "broken.csv"
    good.write_text("name,region\nHarbour City Data Centre,South\n", encoding="utf-8")
    bad.write_text(CUSTOMERS, encoding="utf-8")
    broken.write_bytes(b"name\n")
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["registry", "import", "customers", str(good), "--by", "importer"])
    assert ok.exit_code == 0, ok.output
    assert "customers: 1 created, 0 updated, 0 unchanged, 0 rows refused" in ok.output
    again = runner.invoke(args=["registry", "import", "customers", str(good)])
    assert again.exit_code == 0 and "0 created, 0 updated, 1 unchanged" in again.output
    refused = runner.invoke(args=["registry", "import", "customers", str(bad)])
    assert refused.exit_code == 1
    assert "line 3, column name: is required" in refused.output
    assert "1 created, 1 updated, 0 unchanged, 3 rows refused" in refused.output  # line 2 adds the contact
    header = runner.invoke(args=["registry", "import", "customers", str(broken)])
    assert header.exit_code == 1
    assert "nothing imported: the CSV header is not right: missing column region" in header.output
    with app.app_context():
        assert [(e.type, e.actor) for e in db.session.scalars(select(CustomerEvent).order_by(CustomerEvent.id))] == [
            ("registered", "importer"), ("updated", "cli"), ("registered", "cli")]
