"""A real browser for the web tests: Debian's chromium driven by its chromedriver through
Selenium, headless, against the web application served by uvicorn as `serve` runs it.
Tests skip when chromium or chromedriver is missing (.ci/run installs both)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from gateway.config import WebConfig
from gateway.metrics import Metrics
from gateway.web.app import build_app
from gateway.web.context import WebContext
from gateway.web.http import start_web

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

needs_chromium = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="chromium and chromium-driver (Debian) are not installed",
)


@contextmanager
def served(context: WebContext) -> Iterator[str]:
    """The application on a free loopback port; its base URL."""
    server = start_web(WebConfig(port=0), build_app(context), Metrics())
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@contextmanager
def browser(width: int = 1440, height: int = 1000) -> Iterator[object]:
    """A headless chromium (a fresh profile: no cookies), closed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def full_page_screenshot(driver, path) -> None:
    """The whole page, not only the window: the window is grown to the page's height."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(int(height) + 20, 4000))
    driver.save_screenshot(str(path))
    # 256 colours: a page of flat colours and lines loses nothing a reader sees, and the
    # file shrinks several times (these go into docs/images).
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


def wait_for_next_page(driver, element, seconds: float = 20) -> None:
    """Until `element`, of the page a form was sent from, no longer belongs to the page
    shown: the next page loaded. chromedriver reports an element of the old document
    either as stale or as "Node with given id does not belong to the document" (an
    unknown error); both mean the page was replaced."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def replaced(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    WebDriverWait(driver, seconds).until(replaced)
