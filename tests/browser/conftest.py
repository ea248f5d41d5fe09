"""The dashboard in a real browser: Debian's Chromium driven by Selenium (chromedriver).

Fixtures for every browser test (the dashboard's pages tests reuse them):

- ``dash`` (`Dashboard`): a real server with an admin and two users, ``alice`` and
  ``bob``, and their API tokens (``dash.tokens[name]``).
- ``browser(token)``: a headless Chromium signed in with ``token`` (None: not signed in);
  every one is closed after the test.
- ``shot(driver, name)``: saves a screenshot as ``tests/browser/screenshots/NAME.png``
  (the folder is git-ignored; look at the files after a run).

The tests skip when ``/usr/bin/chromium`` or ``/usr/bin/chromedriver`` is missing, and
fail then when ``CI=true`` (``.ci/run`` installs both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("QRUNTIME_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("QRUNTIME_CHROMEDRIVER", "/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Where the screenshots go (git-ignored).
SCREENSHOTS = Path(__file__).parent / "screenshots"
#: Seconds a browser test waits for something to appear on a page.
WAIT = 30


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    """Chromium's and chromedriver's paths; skips locally when absent, fails in CI."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = (
            f"browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("selenium", reason="pip install selenium (the dev extra)")
    return CHROMIUM, CHROMEDRIVER


@dataclass
class Dashboard:
    """A running server with users; ``url`` is its root."""

    server: Any
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.server.url)

    def service(self, name: str) -> Any:
        """A `RuntimeService` signed in as ``name`` (``admin``, ``alice``, ``bob``)."""
        return self.server.service(self.tokens[name])


@pytest.fixture
def dash(browser_paths: tuple[str, str], make_server: Callable[..., Any]) -> Dashboard:
    server = make_server()
    dashboard = Dashboard(server=server, tokens={"admin": server.admin_token})
    for name in ("alice", "bob"):
        dashboard.tokens[name] = server.add_user(name)
    return dashboard


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT) -> Any:
    """``WebDriverWait.until``, riding out elements made stale meanwhile: a page that
    reloads (after a POST, at a job's end) or a live row that is drawn again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException])
    return waiting.until(condition)


def click(driver: Any, css: str) -> None:
    """Click what ``css`` finds, found again if a live update replaced it meanwhile."""
    from selenium.webdriver.common.by import By

    def clicked(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait(driver, clicked)


def sign_in(driver: Any, url: str, token: str) -> None:
    """Sign in through the sign-in form, as a person does."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/ui/signin")
    field_ = driver.find_element(By.ID, "token")
    field_.send_keys(token)
    field_.submit()
    WebDriverWait(driver, WAIT).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".signout")))


@pytest.fixture
def browser(browser_paths: tuple[str, str], dash: Dashboard) -> Iterator[Callable[..., Any]]:
    """``browser(token=None, *, width=1280, height=900)``: a headless Chromium (signed in)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    drivers: list[Any] = []

    def open_browser(token: str | None = None, *, width: int = 1280, height: int = 900) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in (
            "--headless=new",
            "--no-sandbox",  # root in a container: Chromium's own sandbox cannot start
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={width},{height}",
        ):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        drivers.append(driver)
        driver.set_page_load_timeout(WAIT)
        if token is not None:
            sign_in(driver, dash.url, token)
        return driver

    yield open_browser
    for driver in drivers:
        driver.quit()


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    """``shot(driver, name)``: save the page as ``screenshots/NAME.png``; returns the path."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(driver: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        width = driver.get_window_size()["width"]
        driver.set_window_size(width, min(max(int(height) + 140, 600), 4000))
        driver.save_screenshot(str(path))
        return path

    return take
