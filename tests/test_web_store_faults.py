"""The over-read pages on a real PostgreSQL store, where a NUL character in a value is a
store error (PostgreSQL text cannot hold one) and a store error's text names the
database (user@host/db) and quotes psycopg: a control character in any form field or
filter is refused naming the field before the store sees it, and a store that fails is
shown as "store unavailable" (503), its fault logged by type and line only."""

from __future__ import annotations

import psycopg
import pytest

from tests.overread_support import Site
from tests.test_web_overread import reading_form
from tests.web_support import client_for, csrf_token, sign_in, web_context

# (form field, the words the refusal names it by)
FIELDS = [
    ("impression", "the impression"),
    ("text_0", "the text of statement 1"),
    ("add", "an added statement"),
    ("m_qrs_ms", "measurement qrs_ms"),
    ("base_version", "the form's base_version"),
]


@pytest.fixture
def pg_site(postgres_url, tmp_path):
    site = Site(tmp_path / "data", postgres_url)
    yield site
    site.close()


@pytest.fixture
def physician(pg_site, tmp_path):
    client = client_for(web_context(tmp_path, pg_site.service, audit=pg_site.audit))
    assert sign_in(client, "drsmith").status_code == 303
    return client


def _leaks(page: str, url: str) -> bool:
    host_part = url.split("://", 1)[1].split("/", 1)[0]
    return "postgresql://" in page or host_part in page or "NUL (0x00)" in page


@pytest.mark.parametrize(("field", "named"), FIELDS)
@pytest.mark.parametrize("character", ["\x00", "\x1b"])
def test_a_control_character_in_the_form_is_refused_naming_the_field(
    pg_site, physician, shared_data, field, named, character
):
    job_id = pg_site.receive(shared_data)
    form = reading_form(physician.get(f"/reports/{job_id}").text)
    form[field] = form.get(field, "Sinus rhythm") + character
    response = physician.post(f"/reports/{job_id}/confirm", data=form)
    assert response.status_code == 422
    assert f"Not saved: {named}: a control character" in response.text.replace("&#39;", "'")
    assert not _leaks(response.text, pg_site.url)
    latest = pg_site.store.latest_report_version(job_id)
    assert latest.version == 1 and latest.status == "preliminary"


def test_a_control_character_in_a_worklist_filter_is_refused_naming_it(pg_site, physician):
    response = physician.get("/worklist", params={"site": "ward\x00 3"})
    assert response.status_code == 400
    assert "the site filter: a control character" in response.text
    assert not _leaks(response.text, pg_site.url)


def test_a_control_character_in_the_login_form_is_refused_naming_the_field(pg_site, tmp_path):
    client = client_for(web_context(tmp_path, pg_site.service, audit=pg_site.audit))
    token = csrf_token(client.get("/login").text)
    response = client.post(
        "/login", data={"csrf_token": token, "user_id": "drsmith\x00", "password": "x" * 12}
    )
    assert response.status_code == 400
    assert "the user ID: a control character" in response.text
    assert "\\u0000" not in pg_site.audit_text()


def test_a_store_fault_is_shown_as_store_unavailable_and_logged_by_type(
    pg_site, physician, shared_data, caplog
):
    """A real fault of the real store (its worklist table gone, as a bad restore leaves
    it): psycopg's text names the relation and the error names the database."""
    job_id = pg_site.receive(shared_data)
    with psycopg.connect(pg_site.url, autocommit=True) as conn:
        conn.execute("DROP TABLE report_worklist CASCADE")
    with caplog.at_level("DEBUG"):
        pages = [physician.get("/worklist"), physician.get(f"/reports/{job_id}")]
    for page in pages:
        assert page.status_code == 503
        assert "The store is unavailable" in page.text
        assert not _leaks(page.text, pg_site.url) and "report_worklist" not in page.text
    assert "store unavailable: StoreError at postgres.py:" in caplog.text
    assert not _leaks(caplog.text, pg_site.url) and "report_worklist" not in caplog.text
