"""The dashboard's sign-in, jobs list, job page and CSRF checks, in headless Chromium."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from bench.harness import free_port
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from tests.browser.conftest import Dashboard, click, wait

pytestmark = pytest.mark.slow

STEPS_PROGRAM = '''
import time


def main(backend, user_messenger, steps=3, gap=1.5, hold=120):
    """Publish a step and log a line every ``gap`` seconds, then wait ``hold`` seconds."""
    for step in range(steps):
        print(f"step {step} done", flush=True)
        user_messenger.publish({"step": step})
        time.sleep(gap)
    time.sleep(hold)
    return {"steps": steps}
'''


def _mark(driver: Any) -> None:
    """Set a marker that a page reload would lose."""
    driver.execute_script("window.__notReloaded = true;")


def _still_marked(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__notReloaded === true;"))


def _upload_steps(service: Any) -> str:
    program_id: str = service.upload_program(
        data=STEPS_PROGRAM,
        metadata={
            "name": "dashboard-steps",
            "description": "Steps with interim results and log lines, then a wait.",
            "max_execution_time": 300,
        },
    )
    return program_id


def test_sign_in_with_a_token_and_out(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    driver = browser()
    driver.get(f"{dash.url}/ui/jobs")
    assert "/ui/signin" in driver.current_url  # not signed in: sent to sign in
    field = driver.find_element(By.ID, "token")
    field.send_keys("qrt_not_a_real_token_at_all")
    field.submit()
    error = wait(driver, ec.presence_of_element_located((By.ID, "signin-error")))
    assert "not valid" in error.text
    shot(driver, "signin-error")

    field = driver.find_element(By.ID, "token")
    field.send_keys(dash.tokens["alice"])
    field.submit()
    wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, ".signout")))
    assert driver.current_url.endswith("/ui/jobs")  # back where it was going
    assert "alice" in driver.find_element(By.CSS_SELECTOR, ".signout .who").text
    cookie = driver.get_cookie("qruntime_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert not driver.execute_script("return document.cookie").count("qruntime_session")
    driver.get(f"{dash.url}/")
    wait(driver, ec.presence_of_element_located((By.ID, "backend-lanes")))
    shot(driver, "overview")

    driver.find_element(By.CSS_SELECTOR, ".signout button").click()
    notice = wait(driver, ec.presence_of_element_located((By.ID, "signin-notice")))
    assert "signed out" in notice.text
    assert driver.get_cookie("qruntime_session") is None
    # The secret is revoked on the server, not only forgotten by the browser.
    answer = httpx.get(
        f"{dash.url}/ui/jobs", cookies={"qruntime_session": cookie["value"]}, timeout=30
    )
    assert answer.status_code == 303
    assert "expired=1" in answer.headers["location"]
    answer = httpx.get(
        f"{dash.url}/users/me", headers={"Authorization": f"Bearer {cookie['value']}"}, timeout=30
    )
    assert answer.status_code == 401


def test_a_job_appears_streams_live_and_is_cancelled_from_its_page(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    service = dash.service("alice")
    program_id = _upload_steps(service)
    driver = browser(dash.tokens["alice"])
    driver.get(f"{dash.url}/ui/jobs")
    wait(driver, ec.presence_of_element_located((By.ID, "job-list")))
    _mark(driver)

    job = service.run(
        program_id, inputs={"steps": 3, "gap": 1.5}, options={"backend": "aer_simulator"}
    )
    wait(
        driver, ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-job="{job.job_id()}"]'))
    )
    assert _still_marked(driver)  # it came without a reload
    shot(driver, "jobs-list")

    click(driver, f'tr[data-job="{job.job_id()}"] a')  # the live list may redraw the row
    wait(driver, ec.presence_of_element_located((By.ID, "job-log")))
    _mark(driver)
    shown_at_load = len(driver.find_elements(By.CSS_SELECTOR, "#interim-list li"))
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#interim-list li")) == 3)
    wait(driver, lambda d: "step 2 done" in d.find_element(By.ID, "job-log").text)
    assert _still_marked(driver)
    assert shown_at_load < 3  # at least the last one arrived while the page was open
    items = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#interim-list li")]
    assert [item.replace(" ", "") for item in items] == [f'{{"step":{i}}}' for i in range(3)]
    assert driver.find_element(By.ID, "job-log").text.count("step 0 done") == 1
    assert driver.find_element(By.ID, "job-status").text == "Running"
    assert job.status().name == "RUNNING"
    # The timeline shows when it started, whether it started before or after the page loaded.
    wait(driver, lambda d: "—" not in d.find_elements(By.CSS_SELECTOR, "#timeline li")[1].text)
    assert _still_marked(driver)
    shot(driver, "job-running")

    driver.find_element(By.ID, "cancel-job").click()
    wait(driver, lambda d: d.find_element(By.ID, "job-status").text == "Cancelled")
    assert job.status().name == "CANCELLED"
    assert "cancelled" in driver.find_element(By.ID, "job-reason").text
    shot(driver, "job-cancelled")


def test_a_sampler_result_shows_as_a_histogram(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    from qiskit import QuantumCircuit

    from qruntime import SamplerV2

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    sampler = SamplerV2(mode="aer_simulator", service=dash.service("alice"))
    job = sampler.run([bell], shots=1000)
    counts = job.result()[0].data.meas.get_counts()

    driver = browser(dash.tokens["alice"])
    driver.get(f"{dash.url}/ui/jobs/{job.job_id()}")
    bars = wait(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.histogram g.outcome") or None
    )
    drawn = {
        bar.get_attribute("data-outcome"): int(bar.get_attribute("data-count")) for bar in bars
    }
    assert drawn == counts
    assert set(drawn) <= {"00", "11", "01", "10"}
    download = driver.find_element(By.ID, "download-result").get_attribute("href")
    answer = httpx.get(
        download, cookies={"qruntime_session": driver.get_cookie("qruntime_session")["value"]}
    )
    assert answer.status_code == 200
    assert "PrimitiveResult" in answer.text
    shot(driver, "job-histogram")


def test_another_users_job_is_not_found_and_not_listed(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    bobs = dash.service("bob").run(
        "hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"}
    )
    alices = dash.service("alice").run(
        "hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"}
    )
    bobs.result()
    alices.result()
    driver = browser(dash.tokens["alice"])
    driver.get(f"{dash.url}/ui/jobs/{bobs.job_id()}")
    not_yours = driver.find_element(By.ID, "error-message").text
    title = driver.find_element(By.TAG_NAME, "h1").text
    shot(driver, "job-not-found")
    driver.get(f"{dash.url}/ui/jobs/{'0' * 20}")
    assert driver.find_element(By.ID, "error-message").text.replace("0" * 20, bobs.job_id()) == (
        not_yours
    )
    assert title == driver.find_element(By.TAG_NAME, "h1").text == "Not found"
    driver.get(f"{dash.url}/ui/jobs")
    listed = {
        row.get_attribute("data-job")
        for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-job]")
    }
    assert listed == {alices.job_id()}
    # What the API answers is what the page shows.
    answer = httpx.get(
        f"{dash.url}/ui/jobs/{bobs.job_id()}",
        cookies={"qruntime_session": driver.get_cookie("qruntime_session")["value"]},
    )
    assert answer.status_code == 404


@pytest.fixture
def other_site() -> Iterator[tuple[str, dict[str, str]]]:
    """Another site on another port: it serves ``pages[path]`` as HTML."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_cross_site_post_without_the_token_is_refused(
    dash: Dashboard,
    browser: Callable[..., Any],
    shot: Callable[[Any, str], Any],
    other_site: tuple[str, dict[str, str]],
) -> None:
    service = dash.service("alice")
    job = service.run(
        _upload_steps(service), inputs={"steps": 1, "gap": 0}, options={"backend": "aer_simulator"}
    )
    driver = browser(dash.tokens["alice"])
    site, pages = other_site
    pages["/attack"] = (
        f'<form id="f" method="post" action="{dash.url}/ui/jobs/{job.job_id()}/cancel">'
        '<input name="x" value="1"></form><script>document.getElementById("f").submit()</script>'
    )
    driver.get(f"{site}/attack")
    message = wait(driver, ec.presence_of_element_located((By.ID, "error-message")))
    assert "another site" in message.text
    shot(driver, "csrf-refused")
    assert job.status().name in ("QUEUED", "RUNNING")

    # Same origin but without the form's token (a script on a page that lacks it): refused.
    secret = driver.get_cookie("qruntime_session")["value"]
    answer = httpx.post(
        f"{dash.url}/ui/jobs/{job.job_id()}/cancel",
        data={"csrf_token": "wrong"},
        cookies={"qruntime_session": secret},
        headers={"Origin": dash.url},
    )
    assert answer.status_code == 403
    assert "security token" in answer.text
    assert "Traceback" not in answer.text
    assert job.status().name in ("QUEUED", "RUNNING")
    job.cancel()
