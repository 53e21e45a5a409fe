"""Signing in to the over-read application: argon2 passwords from the users file, wrong
ones paused per user and per address, CSRF on every POST (the login form's too), sessions
that end on sign-out and after idling, cookies a script cannot read; each refusal named
on the page and in the audit trail."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from gateway.config import ConfigError, load_config
from gateway.web.sessions import COOKIE, Sessions
from tests.web_support import (
    PASSWORDS,
    audit_messages,
    client_for,
    csrf_token,
    sign_in,
    web_context,
)


@pytest.fixture
def context(tmp_path):
    return web_context(tmp_path)


def test_right_password_signs_in_with_a_strict_http_only_cookie(context):
    client = client_for(context)
    response = sign_in(client, "drsmith")
    assert response.status_code == 303 and response.headers["location"] == "/worklist"
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; Secure under TLS (below)
    assert any(
        "110114" in m and "drsmith" in m and 'EventOutcomeIndicator="0"' in m
        for m in audit_messages(context)
    )


def test_cookie_is_secure_under_tls(context):
    context.secure_cookies = True
    client = client_for(context)
    response = client.get("/login")
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_is_refused_and_audited(context):
    client = client_for(context)
    response = sign_in(client, "drsmith", "not-her-password")
    assert response.status_code == 401
    assert "Wrong user ID or password." in response.text
    assert COOKIE not in response.cookies or response.headers.get("location") is None
    refused = [m for m in audit_messages(context) if "wrong user ID or password" in m]
    assert len(refused) == 1 and 'EventOutcomeIndicator="4"' in refused[0]
    assert "drsmith" in refused[0]


def test_wrong_passwords_pause_the_user_even_for_the_right_one(context):
    client = client_for(context)
    for _ in range(3):
        assert sign_in(client, "drsmith", "guess-guess").status_code == 401
    response = sign_in(client, "drsmith")  # right password, but paused
    assert response.status_code == 429
    assert "Too many wrong passwords for this user. Try again in 10 minutes." in response.text
    assert any("sign-in paused" in m for m in audit_messages(context))
    # another user from the same computer is not paused by drsmith's count
    assert sign_in(client, "drjones").status_code == 303


def test_wrong_passwords_from_one_address_pause_that_address(context):
    client = client_for(context)
    for attempt in range(12):  # 4 x the per-user limit, spread over many user IDs
        assert sign_in(client, f"guess{attempt}", "nope-nope-nope").status_code == 401
    response = sign_in(client, "drjones")
    assert response.status_code == 429
    assert "Too many wrong passwords for this computer" in response.text


def test_login_without_or_with_a_forged_csrf_token_is_refused(context):
    client = client_for(context)
    client.get("/login")
    form = {"user_id": "drsmith", "password": PASSWORDS["drsmith"]}
    missing = client.post("/login", data=form)
    assert missing.status_code == 403
    assert "the form carried no CSRF token" in missing.text
    forged = client.post("/login", data={**form, "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert "CSRF token does not match your session" in forged.text
    alerts = [m for m in audit_messages(context) if "CSRF check failed on POST /login" in m]
    assert len(alerts) == 2 and all("110113" in m for m in alerts)


def test_a_token_from_another_session_is_refused(context):
    attacker, victim = client_for(context), client_for(context)
    stolen_from_attacker = csrf_token(attacker.get("/login").text)
    assert sign_in(victim, "drsmith").status_code == 303
    page = victim.post("/logout", data={"csrf_token": stolen_from_attacker})
    assert page.status_code == 403
    assert victim.get("/login").headers["location"] == "/worklist"  # still signed in


def test_sign_out_ends_the_session_on_the_server(context):
    client = client_for(context)
    sign_in(client, "drsmith")
    session_id = client.cookies[COOKIE]
    token = context.sessions.get(session_id).csrf_token  # what the pages' forms carry
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    client.cookies.set(COOKIE, session_id)  # replaying the old cookie gets nowhere
    assert client.get("/worklist").headers["location"].startswith("/login")
    assert any("110123" in m for m in audit_messages(context))  # Logout


def test_an_idle_session_expires(context):
    now = [1000.0]
    context.sessions = Sessions(idle_s=60.0, clock=lambda: now[0])
    client = client_for(context)
    sign_in(client, "drsmith")
    now[0] += 59.0
    assert client.get("/login").headers["location"] == "/worklist"  # still signed in
    now[0] += 61.0
    assert client.get("/worklist").headers["location"] == "/login?next=/worklist"


def test_next_page_stays_on_this_site(context):
    client = client_for(context)
    token = csrf_token(client.get("/login?next=//evil.example/x").text)
    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "user_id": "drsmith",
            "password": PASSWORDS["drsmith"],
            "next": "https://evil.example/",
        },
    )
    assert response.headers["location"] == "/worklist"


def test_pages_carry_security_headers(context):
    response = client_for(context).get("/login")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


def test_cli_adds_a_user_with_an_argon2_hash_read_from_stdin(tmp_path):
    users = tmp_path / "users.yaml"
    command = [
        sys.executable,
        "-m",
        "gateway.cli",
        "web",
        "user",
        "add",
        "drnew",
        "--role",
        "physician",
        "--name",
        "New^Doctor",
        "--users-file",
        str(users),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    short = subprocess.run(command, check=False, input="short\n", capture_output=True, text=True)
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    done = subprocess.run(
        command, check=False, input="a-long-enough-pw\n", capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    entry = yaml.safe_load(users.read_text())["users"][0]
    assert entry["user_id"] == "drnew" and entry["password_hash"].startswith("$argon2id$")
    assert "a-long-enough-pw" not in users.read_text()
    assert users.stat().st_mode & 0o077 == 0
    from gateway.web.auth import Directory

    assert Directory.from_file(users).authenticate("DrNew", "a-long-enough-pw").role == "physician"


def test_a_user_added_while_running_can_sign_in_without_a_restart(context, tmp_path):
    from gateway.web.auth import add_user

    client = client_for(context)
    assert sign_in(client, "drlate", "late-password-1").status_code == 401
    add_user(tmp_path / "web-users.yaml", "drlate", "Late^Lou", "physician", "late-password-1")
    assert sign_in(client, "drlate", "late-password-1").status_code == 303


def test_web_beyond_loopback_needs_tls(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text("web:\n  enabled: true\n  bind: 0.0.0.0\n")
    with pytest.raises(ConfigError, match=r"line 1: web: .*web.bind 0.0.0.0 .*web.tls"):
        load_config(config)
    config.write_text("web:\n  enabled: true\n  bind: 0.0.0.0\n  tls: {enabled: true}\n")
    with pytest.raises(ConfigError, match="tls.enabled needs both 'cert' and 'key'"):
        load_config(config)
