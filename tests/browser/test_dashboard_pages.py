"""The dashboard's sessions, programs, backends and admin pages, in headless Chromium."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from tests.browser.conftest import WAIT, Dashboard, wait

pytestmark = pytest.mark.slow

SPEC_PROGRAM = """
def main(backend, user_messenger, rounds=1, label="x"):
    return {"rounds": rounds, "label": label}
"""
SLEEPER = """
import time
def main(backend, user_messenger, **kwargs):
    time.sleep(3)
    return "rested"
"""
SPEC = {
    "parameters": {
        "type": "object",
        "properties": {
            "rounds": {"type": "integer", "minimum": 1, "default": 1, "description": "How often."},
            "label": {"type": "string", "description": "A name for the run."},
        },
        "required": ["rounds"],
    },
    "return_values": {"type": "object", "properties": {"rounds": {"type": "integer"}}},
    "interim_results": {"type": "string", "description": "Nothing is published."},
}


def _api(dash: Dashboard, name: str) -> httpx.Client:
    """An HTTP client with ``name``'s access token, for what the Python client hides."""
    login = httpx.post(
        f"{dash.url}/users/loginWithToken", json={"apiToken": dash.tokens[name]}, timeout=WAIT
    )
    login.raise_for_status()
    return httpx.Client(
        base_url=dash.url, headers={"Authorization": f"Bearer {login.json()['id']}"}, timeout=WAIT
    )


def test_an_admin_creates_a_users_token_and_the_client_works_with_it(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    driver = browser(dash.tokens["admin"])
    driver.get(f"{dash.url}/ui/admin")
    users = {
        row.get_attribute("data-user")
        for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-user]")
    }
    assert {"admin", "alice", "bob"} <= users
    driver.find_element(By.ID, "new-name").send_keys("carol")
    driver.find_element(By.CSS_SELECTOR, "#create-user button[type=submit]").click()
    carols = wait(driver, lambda d: d.find_element(By.ID, "new-token")).text.strip()
    shot(driver, "admin")
    assert carols.startswith("qrt_")

    driver.get(f"{dash.url}/ui/admin/users/alice")
    tokens_before = len(driver.find_elements(By.CSS_SELECTOR, "tr[data-token]"))
    driver.find_element(By.ID, "create-token").click()
    token = wait(driver, lambda d: d.find_element(By.ID, "new-token")).text.strip()
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr[data-token]")) == tokens_before + 1
    shot(driver, "admin-user")

    # The new token works with the Python client, as alice.
    service = dash.server.service(token)
    job = service.run("hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"})
    job.result()
    listed = dash.service("alice").jobs(limit=5)
    assert job.job_id() in {j.job_id() for j in listed}
    assert dash.server.service(carols).backends()  # carol's token works too

    # Revoking it from the page ends it.
    driver.get(f"{dash.url}/ui/admin/users/alice")
    newest = driver.find_elements(By.CSS_SELECTOR, "tr[data-token]")[-1]
    newest.find_element(By.CSS_SELECTOR, "button").click()
    wait(driver, lambda d: "was revoked" in d.find_element(By.TAG_NAME, "main").text)
    refused = httpx.post(f"{dash.url}/users/loginWithToken", json={"apiToken": token}, timeout=WAIT)
    assert refused.status_code == 401


def test_the_cluster_page_shows_the_server_leading_and_the_node_jobs_run_on(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    job = dash.service("alice").run(
        "hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"}
    )
    job.result()  # the node has run a job: its workers are ready
    driver = browser(dash.tokens["admin"])
    driver.get(f"{dash.url}/ui/admin")
    driver.find_element(By.ID, "cluster-link").click()
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Servers and nodes")
    (server,) = driver.find_elements(By.CSS_SELECTOR, "tr[data-server]")
    assert "leader" in server.text
    assert "(this page)" in server.text
    assert dash.url.removeprefix("http://") in server.text
    node = driver.find_element(By.CSS_SELECTOR, 'tr[data-node="local"]')
    assert "ready" in node.text
    assert "CPU=" in node.text
    facts = driver.find_element(By.ID, "cluster-facts").text
    assert "sqlite" in facts
    assert "0 queued, 0 running" in facts
    shot(driver, "admin-cluster")

    # The page follows the queue: a job that runs shows, on the node too, then goes.
    alice = dash.service("alice")
    sleeper = alice.upload_program(
        data=SLEEPER,
        metadata={"name": "sleeper", "description": "rests", "max_execution_time": 60},
    )
    running = alice.run(sleeper, inputs={}, options={"backend": "aer_simulator"})

    def node_jobs(d: Any) -> str:
        return d.find_element(By.CSS_SELECTOR, 'tr[data-node="local"] td:nth-child(4)').text

    wait(driver, lambda d: "1 running" in d.find_element(By.ID, "cluster-facts").text)
    assert node_jobs(driver) == "1"
    running.result()
    wait(driver, lambda d: "0 running" in d.find_element(By.ID, "cluster-facts").text)
    assert node_jobs(driver) == "0"


def test_a_user_who_is_not_an_admin_gets_the_not_found_page(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    driver = browser(dash.tokens["alice"])
    nav = driver.find_element(By.CSS_SELECTOR, "header nav").text
    assert "Admin" not in nav
    for path in ("/ui/admin", "/ui/admin/users/bob", "/ui/admin/cluster"):
        driver.get(f"{dash.url}{path}")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Not found"
    shot(driver, "admin-not-found")
    driver.get(f"{dash.url}/ui/jobs/{'0' * 20}")  # the same page as for any missing thing
    assert driver.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_the_coupling_map_of_the_27_qubit_device_renders_with_its_calibration(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    driver = browser(dash.tokens["alice"])
    driver.get(f"{dash.url}/ui/backends")
    names = {
        row.get_attribute("data-backend")
        for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-backend]")
    }
    assert {"aer_simulator", "fake_27q"} <= names
    shot(driver, "backends")
    driver.find_element(By.LINK_TEXT, "fake_27q").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.coupling-map"))
    svg = driver.find_element(By.CSS_SELECTOR, "svg.coupling-map")
    assert len(svg.find_elements(By.CSS_SELECTOR, "g.qubit circle")) == 27
    assert len(svg.find_elements(By.CSS_SELECTOR, "g.edge line")) == 28
    assert svg.get_attribute("data-colour-by") == "readout_error"
    box = svg.rect
    assert box["width"] > 300  # drawn, not collapsed
    rows = driver.find_elements(By.CSS_SELECTOR, "#qubit-calibration tbody tr")
    assert len(rows) == 27
    assert driver.find_elements(By.CSS_SELECTOR, "#pair-calibration tbody tr")
    shot(driver, "backend-fake_27q")
    # Colour by T1: the select submits itself.
    Select(driver.find_element(By.ID, "colour-by")).select_by_value("t1")
    wait(
        driver,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "svg.coupling-map").get_attribute("data-colour-by")
            == "t1"
        ),
    )
    driver.get(f"{dash.url}/ui/backends/aer_simulator")
    assert "no coupling map" in driver.find_element(By.TAG_NAME, "main").text
    driver.get(f"{dash.url}/ui/backends/no_such_backend")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_a_session_page_shows_its_clocks_and_closing_and_cancelling_work(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    with _api(dash, "alice") as api:
        first = api.post("/sessions", json={"mode": "dedicated", "backend": "fake_5q"}).json()["id"]
        second = api.post("/sessions", json={"mode": "batch", "backend": "aer_simulator"}).json()[
            "id"
        ]
    # A job in the first session makes it active: its max_time clock runs.
    service = dash.service("alice")
    with _api(dash, "alice") as api:
        submitted = api.post(
            "/jobs",
            json={
                "program_id": "hello-world",
                "backend": "fake_5q",
                "params": {"iterations": 1},
                "session_id": first,
            },
        )
        assert submitted.status_code < 300, submitted.text
        job_id = submitted.json()["id"]
    service.job(job_id).result()

    driver = browser(dash.tokens["alice"])
    driver.get(f"{dash.url}/ui/sessions")
    listed = {
        row.get_attribute("data-session")
        for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-session]")
    }
    assert {first, second} <= listed
    shot(driver, "sessions")

    driver.get(f"{dash.url}/ui/sessions/{first}")
    assert driver.find_element(By.ID, "session-state").text == "active"
    clock = driver.find_element(By.CSS_SELECTOR, ".clock[data-deadline]")
    wait(driver, lambda d: clock.text.endswith("left"))
    assert job_id in {
        row.get_attribute("data-job")
        for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-job]")
    }
    assert driver.find_element(By.ID, "close-session").is_displayed()
    assert driver.find_element(By.ID, "cancel-session").is_displayed()
    shot(driver, "session")
    driver.find_element(By.ID, "close-session").click()
    wait(driver, lambda d: d.find_element(By.ID, "accepting").text == "no")
    assert not driver.find_elements(By.ID, "close-session")
    with _api(dash, "alice") as api:  # the API agrees: the session takes no new jobs
        assert api.get(f"/sessions/{first}").json()["accepting_jobs"] is False

    driver.get(f"{dash.url}/ui/sessions/{second}")
    driver.find_element(By.ID, "cancel-session").click()
    wait(driver, lambda d: d.find_element(By.ID, "session-state").text == "closed")

    # Bob cannot see alice's session: the same not-found page.
    other = browser(dash.tokens["bob"])
    other.get(f"{dash.url}/ui/sessions/{first}")
    assert other.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_a_program_page_renders_its_spec_and_only_its_owner_sees_source_and_controls(
    dash: Dashboard, browser: Callable[..., Any], shot: Callable[[Any, str], Any]
) -> None:
    program_id = dash.service("alice").upload_program(
        data=SPEC_PROGRAM,
        metadata={
            "name": "spec-demo",
            "description": "A program with a spec.",
            "max_execution_time": 60,
            "spec": SPEC,
        },
    )
    driver = browser(dash.tokens["alice"])
    driver.get(f"{dash.url}/ui/programs")
    assert program_id in {
        row.get_attribute("data-program")
        for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-program]")
    }
    shot(driver, "programs")
    driver.get(f"{dash.url}/ui/programs/{program_id}")
    rows = driver.find_elements(By.CSS_SELECTOR, "#spec-parameters tbody tr")
    cells = [[c.text for c in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert cells[0][:4] == ["rounds", "integer", "yes", "1"]
    assert "minimum: 1" in cells[0]
    assert cells[1][0] == "label"
    assert driver.find_element(By.CSS_SELECTOR, "#spec-interim_results td").text == "(the value)"
    assert "def main(" in driver.find_element(By.ID, "program-source").text
    assert driver.find_element(By.ID, "visibility").text == "private"
    shot(driver, "program")

    # Bob cannot see the private program; once public he sees it without its source.
    other = browser(dash.tokens["bob"])
    other.get(f"{dash.url}/ui/programs/{program_id}")
    assert other.find_element(By.TAG_NAME, "h1").text == "Not found"
    driver.find_element(By.ID, "toggle-visibility").click()
    wait(driver, lambda d: d.find_element(By.ID, "visibility").text == "public")
    other.get(f"{dash.url}/ui/programs/{program_id}")
    assert other.find_elements(By.ID, "spec-parameters")
    assert not other.find_elements(By.ID, "program-source")
    assert not other.find_elements(By.ID, "toggle-visibility")
    assert not other.find_elements(By.ID, "delete-program")

    driver.find_element(By.ID, "delete-program").click()
    wait(driver, lambda d: "was deleted" in d.find_element(By.TAG_NAME, "main").text)
    assert program_id not in {p.program_id for p in dash.service("alice").programs()}
