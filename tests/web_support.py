"""What the web tests share: a users file with real argon2 hashes, the web application
around a given over-read service, an audit trail to look in, and signing in through the
login form (its CSRF token read from the page, as a browser sends it)."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from gateway.audit import Auditor
from gateway.audit.auditor import TRAIL_NAME
from gateway.audit.trail import read_records
from gateway.config import AuditConfig
from gateway.web.app import build_app
from gateway.web.auth import Directory, add_user
from gateway.web.context import WebContext
from gateway.web.login_limits import LoginLimits
from gateway.web.sessions import Sessions

PASSWORDS = {
    "house": "reader-password-1",
    "drsmith": "physician-password-1",
    "drjones": "physician-password-2",
}
USERS = (
    ("house", "House^Gregory", "reader"),
    ("drsmith", "Smith^Anna", "physician"),
    ("drjones", "Jones^Ben", "physician"),
)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


_hashed: dict[str, bytes] = {}


def write_users(path: Path) -> Path:
    """The three users' file at `path` (hashed once per test session: argon2 is slow on purpose)."""
    if "file" not in _hashed:
        for user_id, name, role in USERS:
            add_user(path, user_id, name, role, PASSWORDS[user_id])
        _hashed["file"] = path.read_bytes()
    path.write_bytes(_hashed["file"])
    return path


def web_context(
    tmp_path: Path, service: object = None, audit: Auditor | None = None, **limits: float
) -> WebContext:
    audit = audit or Auditor(tmp_path / "audit", AuditConfig(), "ECGGW")
    return WebContext(
        directory=Directory.from_file(write_users(tmp_path / "web-users.yaml")),
        sessions=Sessions(idle_s=limits.get("idle_s", 1800.0)),
        limits=LoginLimits(int(limits.get("max_failures", 3)), limits.get("window_s", 600.0)),
        service=service,
        audit=audit,
    )


def client_for(context: WebContext) -> TestClient:
    return TestClient(build_app(context), follow_redirects=False)


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: TestClient, user_id: str, password: str | None = None):
    """POST the login form as a browser does; the response (303 on success)."""
    token = csrf_token(client.get("/login").text)
    return client.post(
        "/login",
        data={
            "csrf_token": token,
            "user_id": user_id,
            "password": PASSWORDS.get(user_id, "") if password is None else password,
        },
    )


def audit_messages(context: WebContext) -> list[str]:
    """The audit trail's DICOM audit messages (XML), oldest first."""
    assert context.audit is not None
    records = read_records(context.audit.trail.path.parent / TRAIL_NAME, limit=100_000)
    return [record.msg for record in records]
