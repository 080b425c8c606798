"""Attachments of a case through the API and the service: sniffed, size-limited, stored outside the web root
under a random key, served only as downloads; a refused or failed upload leaves neither a row nor a file."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.attachments import service as attachments
from app.attachments.models import Attachment
from app.audit.models import CaseEvent
from app.auth import Actor
from app.engine import ManualClock
from app.errors import PermissionDeniedError
from app.extensions import db
from app.uow import unit_of_work


def png_bytes() -> bytes:
    """A real 1×1 PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ZIP = b"PK\x03\x04" + b"\x00" * 60
EXE = b"MZ" + b"\x90\x00" * 40
HTML_AS_TEXT = "<html><script>alert(1)</script>王磊</html>\n".encode()


@pytest.fixture
def case_id(deployed: Flask, clock: ManualClock, signed_in: Callable[..., FlaskClient]) -> int:
    """A fault case opened by an agent."""
    response = signed_in("lin", "agent").post("/api/cases", json={
        "process": "fault_handling", "channel": "fax", "reported_at": "2026-03-02T07:00:00+00:00",
        "description": "Fax: UPS alarm, scan attached"})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


@pytest.fixture
def engineer(signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    """王磊, an engineer."""
    return signed_in("王磊", "engineer")


def upload(client: FlaskClient, case_id: int, content: bytes, filename: str = "scan.pdf",
           **fields: object) -> TestResponse:
    """POST a multipart upload to the case."""
    return client.post(f"/api/cases/{case_id}/attachments", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(content), filename), **fields})


def stored_files(app: Flask) -> list[Path]:
    """Every file in the attachment store (partial writes included)."""
    root = Path(app.config["INSTANCE_DIR"]) / "attachments"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rows() -> tuple[int, int]:
    """(attachments, attachment_added events) in the database."""
    db.session.rollback()
    return (db.session.scalar(select(func.count()).select_from(Attachment)) or 0,
            db.session.scalar(select(func.count()).select_from(CaseEvent)
                              .where(CaseEvent.type == "attachment_added")) or 0)


@pytest.fixture(autouse=True)
def _empty_store(app: Flask) -> None:
    """Each test starts with an empty attachment store (the instance folder lives for the session)."""
    for path in stored_files(app):
        path.unlink()


def test_a_png_is_stored_under_a_random_key_and_recorded_in_the_history(
        app: Flask, case_id: int, engineer: FlaskClient) -> None:
    response = upload(engineer, case_id, png_bytes(), "../../etc/现场 photo.png")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["filename"] == "现场 photo.png"  # no folders; the name kept for display
    assert body["content_type"] == "image/png" and body["size_bytes"] == len(png_bytes())
    assert body["uploaded_by"] == "王磊"
    assert body["download"] == f"/api/cases/{case_id}/attachments/{body['id']}/download"
    [path] = stored_files(app)
    assert path.read_bytes() == png_bytes()
    assert path.name == db.session.get(Attachment, body["id"]).storage_key  # never the user's name
    assert "photo" not in str(path) and Path(app.config["INSTANCE_DIR"]) / "attachments" in path.parents
    events = engineer.get(f"/api/cases/{case_id}/events").get_json()["items"]
    added = [e for e in events if e["type"] == "attachment_added"]
    assert len(added) == 1 and added[0]["actor"] == "王磊"
    assert added[0]["payload"] == {"attachment_id": body["id"], "filename": "现场 photo.png",
                                   "content_type": "image/png", "size_bytes": len(png_bytes())}
    listed = engineer.get(f"/api/cases/{case_id}/attachments").get_json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]


def test_the_download_is_an_attachment_with_the_sniffed_type_and_nosniff(case_id: int,
                                                                          engineer: FlaskClient) -> None:
    made = upload(engineer, case_id, PDF, "报告 final.pdf", ).get_json()
    response = engineer.get(made["download"])
    assert response.status_code == 200
    assert response.data == PDF
    assert response.mimetype == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote('报告 final.pdf')}" in disposition


def test_html_sent_as_text_is_served_as_plain_text_never_html(case_id: int, engineer: FlaskClient) -> None:
    made = upload(engineer, case_id, HTML_AS_TEXT, "page.html")
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["content_type"] == "text/plain"
    response = engineer.get(made.get_json()["download"])
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "html" not in response.headers["Content-Type"]
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(("content", "detected"), [
    (ZIP, "application/zip"), (EXE, "application/x-msdownload"),
    (b"\x00\x01\x02\x03binary", "application/octet-stream")])
def test_other_types_are_refused_naming_the_detected_type(app: Flask, case_id: int, engineer: FlaskClient,
                                                          content: bytes, detected: str) -> None:
    response = upload(engineer, case_id, content, "scan.pdf")  # the name and the declared type are not trusted
    assert response.status_code == 415, response.get_json()
    body = response.get_json()
    assert detected in body["message"] and "allowed: PDF" in body["message"]
    assert body["errors"]["detected_type"] == [detected]
    assert rows() == (0, 0) and stored_files(app) == []


def test_a_file_over_the_limit_is_a_413_naming_the_limit(app: Flask, case_id: int, engineer: FlaskClient,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "ATTACHMENT_MAX_BYTES", 1000)
    response = upload(engineer, case_id, PDF + b"x" * 1000)
    assert response.status_code == 413
    assert "limit of 1 KB (1000 bytes)" in response.get_json()["message"]
    huge = upload(engineer, case_id, PDF + b"x" * 200_000)  # beyond the body limit: refused before reading
    assert huge.status_code == 413 and "1000 bytes" in huge.get_json()["message"]
    assert rows() == (0, 0) and stored_files(app) == []
    assert upload(engineer, case_id, PDF).status_code == 201  # under the limit


def test_the_default_limit_is_20_mb_above_the_apps_request_limit(app: Flask, case_id: int,
                                                                 engineer: FlaskClient) -> None:
    assert app.config["ATTACHMENT_MAX_BYTES"] == 20_000_000
    big = PDF + b"0" * 3_000_000  # three times the JSON request limit
    assert upload(engineer, case_id, big).status_code == 201


@pytest.mark.parametrize(("send", "status", "where"), [
    ({"data": {"other": (io.BytesIO(PDF), "a.pdf")}}, 422, "file"),
    ({"data": {"file": "just text"}}, 422, "file"),
    ({"data": {"file": (io.BytesIO(b""), "empty.pdf")}}, 422, "file"),
    ({"data": {"file": (io.BytesIO(PDF), "a.pdf"), "note": "x"}}, 422, "note"),
])
def test_bad_uploads_are_4xx_naming_the_field(app: Flask, case_id: int, engineer: FlaskClient,
                                              send: dict, status: int, where: str) -> None:
    response = engineer.post(f"/api/cases/{case_id}/attachments", content_type="multipart/form-data", **send)
    assert response.status_code == status, response.get_json()
    assert where in response.get_json()["errors"]
    assert rows() == (0, 0) and stored_files(app) == []


def test_json_is_415_and_an_unknown_case_404(case_id: int, engineer: FlaskClient) -> None:
    as_json = engineer.post(f"/api/cases/{case_id}/attachments", json={"file": "x"})
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.get_json()["message"]
    assert upload(engineer, case_id + 50, PDF).status_code == 404
    assert engineer.get(f"/api/cases/{case_id + 50}/attachments").status_code == 404
    assert engineer.get(f"/api/cases/{case_id}/attachments/999/download").status_code == 404


def test_attachments_of_another_case_are_not_found_through_this_one(
        deployed: Flask, case_id: int, engineer: FlaskClient, signed_in: Callable[..., FlaskClient]) -> None:
    other = signed_in("lin", "agent").post("/api/cases", json={
        "process": "fault_handling", "channel": "phone", "reported_at": "2026-03-02T07:00:00+00:00",
        "description": "Another"}).get_json()["id"]
    made = upload(engineer, other, PDF).get_json()
    assert engineer.get(f"/api/cases/{case_id}/attachments/{made['id']}/download").status_code == 404
    assert engineer.get(f"/api/cases/{other}/attachments/{made['id']}/download").status_code == 200


def test_who_may_attach_and_read(case_id: int, engineer: FlaskClient, signed_in: Callable[..., FlaskClient],
                                 client: FlaskClient) -> None:
    made = upload(engineer, case_id, PDF).get_json()
    auditor = signed_in("audrey", "auditor")
    refused = upload(auditor, case_id, PDF)
    assert refused.status_code == 403 and "add attachments" in refused.get_json()["message"]
    assert auditor.get(f"/api/cases/{case_id}/attachments").status_code == 200
    assert auditor.get(made["download"]).status_code == 200
    owner = signed_in("olga", "process_owner")
    assert owner.get(f"/api/cases/{case_id}/attachments").status_code == 403
    assert owner.get(made["download"]).status_code == 403
    assert client.get(made["download"], headers={"Authorization": "Bearer wrong"}).status_code == 401


# -- the service: a failure after the file was written leaves nothing behind ----------------------------
def test_a_transaction_that_fails_after_the_write_removes_the_file(app: Flask, case_id: int) -> None:
    actor = Actor("wang", frozenset({"engineer"}))
    with app.app_context():
        with pytest.raises(RuntimeError, match="after the upload"), unit_of_work():
            attachments.add_attachment(actor=actor, case_id=case_id, filename="scan.pdf", content=PDF)
            assert len(stored_files(app)) == 1  # written before the commit…
            raise RuntimeError("something failed after the upload")
        assert stored_files(app) == []  # …and gone with the rollback
        assert rows() == (0, 0)
        with unit_of_work():
            kept = attachments.add_attachment(actor=actor, case_id=case_id, filename="scan.pdf", content=PDF)
        assert [p.name for p in stored_files(app)] == [kept.storage_key]


def test_a_failing_commit_removes_the_file(app: Flask, case_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    actor = Actor("wang", frozenset({"engineer"}))
    with app.app_context():
        with pytest.raises(RuntimeError, match="disk full"), unit_of_work() as session:
            attachments.add_attachment(actor=actor, case_id=case_id, filename="scan.pdf", content=PDF)

            def failing_commit() -> None:
                raise RuntimeError("disk full")
            monkeypatch.setattr(session, "commit", failing_commit)
        monkeypatch.undo()
        assert stored_files(app) == []
        assert rows() == (0, 0)


@pytest.mark.parametrize(("given", "kept"), [
    ("C:\\fakepath\\scan.pdf", "scan.pdf"),
    ("../../etc/passwd", "passwd"),
    ("..", "attachment.pdf"),
    ("", "attachment.pdf"),
    (None, "attachment.pdf"),
    ("  .hidden  ", "hidden"),
    ('re"port<1>|?.pdf', "re_port_1___.pdf"),
    ("line\nbreak\x00.pdf", "line_break_.pdf"),
    ("王磊的传真.pdf", "王磊的传真.pdf"),
    ("a" * 300 + ".pdf", "a" * 251 + ".pdf"),
])
def test_file_names_are_sanitised_for_display(given: str | None, kept: str) -> None:
    assert attachments.sanitise_filename(given, "application/pdf") == kept


@pytest.mark.parametrize(("content", "kind"), [
    (PDF, "application/pdf"), (png_bytes(), "image/png"), (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
    (b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00", "image/tiff"), (b"GIF89a\x01\x00\x01\x00", "image/gif"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"), ("故障记录\r\n\tline 2\n".encode(), "text/plain")])
def test_the_allowed_types_are_recognised_from_their_bytes(content: bytes, kind: str) -> None:
    assert attachments.sniff_type(content) == kind


def test_the_openapi_document_describes_the_attachment_operations(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    upload_op = paths["/api/cases/{case_id}/attachments"]["post"]
    assert {"201", "401", "403", "404", "413", "415", "422"} <= set(upload_op["responses"])
    body = upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert {"200", "404"} <= set(paths["/api/cases/{case_id}/attachments"]["get"]["responses"])
    download = paths["/api/cases/{case_id}/attachments/{attachment_id}/download"]["get"]["responses"]
    assert "application/octet-stream" in download["200"]["content"] and "404" in download


# -- the sweep: files a killed process left behind go, attachments without a file are named ---------------
def _leftover(app: Flask, name: str, content: bytes, age: timedelta) -> Path:
    """A file in the store as a process killed before its commit leaves it, ``age`` old on disk."""
    path = Path(app.config["INSTANCE_DIR"]) / "attachments" / name[:2] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    moment = time.time() - age.total_seconds()
    os.utime(path, (moment, moment))
    return path


def test_the_sweep_removes_old_files_no_attachment_names_and_keeps_the_rest(app: Flask, case_id: int) -> None:
    actor = Actor("wang", frozenset({"engineer"}))
    admin = Actor("root", frozenset({"admin"}))
    with app.app_context():
        with unit_of_work():
            kept = attachments.add_attachment(actor=actor, case_id=case_id, filename="scan.pdf", content=PDF)
        old = _leftover(app, "ab" * 16, PDF, timedelta(hours=3))
        partial = _leftover(app, "cd" * 16 + ".part", PDF[:10], timedelta(hours=3))
        young = _leftover(app, "ef" * 16, PDF, timedelta(minutes=5))
        real = Path(app.config["INSTANCE_DIR"]) / "attachments" / kept.storage_key[:2] / kept.storage_key
        os.utime(real, (time.time() - 86400, time.time() - 86400))  # an old file with its row stays

        dry = attachments.sweep_orphaned_files(actor=admin, older_than=timedelta(hours=1), dry_run=True)
        assert sorted(dry.removed) == sorted([old, partial]) and old.exists() and partial.exists()

        report = attachments.sweep_orphaned_files(actor=admin, older_than=timedelta(hours=1))
        assert sorted(report.removed) == sorted([old, partial])
        assert report.removed_bytes == len(PDF) + 10 and report.kept_young == 1 and report.missing == []
        assert sorted(stored_files(app)) == sorted([real, young])
        assert rows() == (1, 1)

        with pytest.raises(PermissionDeniedError, match="sweep the attachment folder"):
            attachments.sweep_orphaned_files(actor=actor)


def test_the_sweep_command_names_attachments_whose_file_is_gone_and_exits_1(app: Flask, case_id: int) -> None:
    actor = Actor("wang", frozenset({"engineer"}))
    with app.app_context():
        with unit_of_work():
            lost = attachments.add_attachment(actor=actor, case_id=case_id, filename="传真.pdf", content=PDF)
        lost_id = lost.id
        (Path(app.config["INSTANCE_DIR"]) / "attachments" / lost.storage_key[:2] / lost.storage_key).unlink()
        _leftover(app, "ab" * 16, PDF, timedelta(days=2))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["attachments", "sweep", "--older-than", "1d"])
    assert result.exit_code == 1, result.output
    assert f"missing: attachment {lost_id} of case {case_id} (传真.pdf) has no file" in result.output
    assert "removed 1 file(s) without an attachment" in result.output
    assert stored_files(app) == []
    bad = runner.invoke(args=["attachments", "sweep", "--older-than", "soon"])
    assert bad.exit_code == 2 and "--older-than" in bad.output
