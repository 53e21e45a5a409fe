"""The over-read application in a real browser (headless chromium through Selenium): a
physician signs in, finds the report in the worklist, reads it (the 12-lead page drawn
as SVG), removes and adds statements, edits the impression, corrects a measurement and
confirms with the keyboard; the confirmed version reaches the FHIR server and the MLLP
peer (tests/peers.py) as the EHR sees it. A reader sees the report but no confirm
button. Screenshots are kept in the test's directory, and in $ECG_GATEWAY_SCREENSHOTS
when set (how docs/images/ is made: see docs/overread-web.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.browser_support import (
    browser,
    full_page_screenshot,
    needs_chromium,
    served,
    wait_for_next_page,
)
from tests.overread_support import RECORDS, Site
from tests.peers import FhirTestServer, Hl7TestPeer
from tests.web_support import PASSWORDS, web_context

pytestmark = needs_chromium


@pytest.fixture
def peers():
    fhir, mllp = FhirTestServer().start(), Hl7TestPeer().start()
    yield fhir, mllp
    fhir.stop()
    mllp.stop()


@pytest.fixture
def site(tmp_path, peers):
    fhir, mllp = peers
    routes = (
        "destinations:\n"
        f"  ehr: {{type: fhir, endpoint: '{fhir.base_url}'}}\n"
        f"  ris: {{type: hl7, endpoint: 'mllp://127.0.0.1:{mllp.port}', timeout_s: 5}}\n"
        "default: [ehr, ris]\n"
    )
    gateway = Site(tmp_path / "data", None, routes=routes)
    yield gateway
    gateway.close()


def _keep(path: Path) -> None:
    wanted = os.environ.get("ECG_GATEWAY_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(wanted) / path.name)


def _sign_in(driver, base: str, user_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/worklist")
    assert "/login" in driver.current_url  # not signed in: the login page first
    driver.find_element(By.ID, "user_id").send_keys(user_id)
    password = driver.find_element(By.ID, "password")
    password.send_keys(PASSWORDS[user_id])
    password.submit()
    wait_for_next_page(driver, password)


def test_physician_confirms_with_edits_and_the_final_report_reaches_the_ehr(
    site, peers, tmp_path, shared_data
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    fhir, mllp = peers
    other = site.receive(shared_data, RECORDS[1])
    job_id = site.receive(shared_data, RECORDS[0])
    assert site.sweeper.sweep().sent == 4  # the preliminary reports, to both peers
    web = web_context(tmp_path, site.service, audit=site.audit)
    with served(web) as base, browser() as driver:
        _sign_in(driver, base, "drsmith")
        assert driver.current_url.endswith("/worklist")
        rows = driver.find_elements(By.CSS_SELECTOR, "#worklist tbody tr")
        assert len(rows) == 2 and "2 reports" in driver.find_element(By.ID, "counts").text
        row = next(r for r in rows if f'href="/reports/{job_id}"' in r.get_attribute("innerHTML"))
        assert "Doe, Jane" in row.text and "PAT-0042" in row.text
        full_page_screenshot(driver, tmp_path / "overread-worklist.png")
        _keep(tmp_path / "overread-worklist.png")

        row.find_element(By.CSS_SELECTOR, f'a[href="/reports/{job_id}"]').click()
        assert driver.current_url.endswith(f"/reports/{job_id}")
        page = driver.find_element(By.ID, "ecg-page")
        drawn = driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", page
        )
        assert drawn and drawn > 0, "the 12-lead SVG did not load"
        first_code = driver.find_element(By.NAME, "code_0").get_attribute("value")
        full_page_screenshot(driver, tmp_path / "overread-report.png")
        _keep(tmp_path / "overread-report.png")

        driver.find_element(By.NAME, "remove_0").click()
        driver.find_element(By.ID, "add_0").send_keys("AFIB — Atrial fibrillation")
        impression = driver.find_element(By.ID, "impression")
        impression.clear()
        impression.send_keys("Atrial fibrillation. Over-read by Dr Smith.")
        qrs = driver.find_element(By.ID, "m_qrs_ms")
        qrs.clear()
        qrs.send_keys("98")
        confirm = driver.find_element(By.ID, "confirm")
        confirm.send_keys(Keys.ENTER)  # the keyboard is enough
        wait_for_next_page(driver, confirm)

        refusals = [alert.text for alert in driver.find_elements(By.CSS_SELECTOR, "[role=alert]")]
        assert driver.current_url.endswith("/worklist"), refusals
        notice = driver.find_element(By.CSS_SELECTOR, ".notice.ok").text
        assert f"Report {job_id} confirmed as final (version 2)" in notice
        [left] = driver.find_elements(By.CSS_SELECTOR, "#worklist tbody tr")
        assert f'href="/reports/{other}"' in left.get_attribute("innerHTML")

    assert site.sweeper.sweep().sent == 2  # the final version, to both peers
    reports = fhir.resources("DiagnosticReport")
    assert len(reports) == 2  # one per ECG: the final version updated its own in place
    [report] = [r for r in reports if r["status"] != "preliminary"]
    assert report["status"] == "final"
    assert "Atrial fibrillation. Over-read by Dr Smith." in report["conclusion"]
    codes = str(report.get("conclusionCode", ""))
    assert "164889003" in codes  # AFIB's SNOMED CT concept
    final = mllp.received[-1]
    assert str(final.segment("OBR")[25]) == "F"
    assert "Smith" in str(final.segment("OBR")[32])
    assert "Atrial fibrillation. Over-read by Dr Smith." in str(final)
    [change] = site.service.history(job_id)
    assert [first_code, "AFIB"][1] in {code for code, _ in change.after["statements"]}
    assert first_code not in {code for code, _ in change.after["statements"]}
    assert change.after["measurements"]["qrs_ms"] == 98.0


def test_a_reader_sees_the_report_without_a_confirm_button(site, tmp_path, shared_data):
    from selenium.webdriver.common.by import By

    job_id = site.receive(shared_data)
    web = web_context(tmp_path, site.service, audit=site.audit)
    with served(web) as base, browser() as driver:
        _sign_in(driver, base, "house")
        driver.get(f"{base}/reports/{job_id}")
        assert not driver.find_elements(By.ID, "confirm")
        assert "can read reports but not confirm them" in driver.page_source
        assert not driver.find_element(By.ID, "impression").is_enabled()


def test_a_wrong_password_is_shown_on_the_login_page(site, tmp_path):
    from selenium.webdriver.common.by import By

    web = web_context(tmp_path, site.service, audit=site.audit)
    with served(web) as base, browser() as driver:
        driver.get(f"{base}/login")
        driver.find_element(By.ID, "user_id").send_keys("drsmith")
        password = driver.find_element(By.ID, "password")
        password.send_keys("not-the-password")
        password.submit()
        assert driver.find_element(By.ID, "login-error").text == "Wrong user ID or password."
