"""Dashboard sign-in and CSRF checks, against a real server."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from qruntime.server.ui.auth import COOKIE, csrf_token_for


def _signed_in(server: Any) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url, timeout=30)
    answer = client.post("/ui/signin", data={"token": server.admin_token, "next": "/ui/jobs"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/jobs"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    return client, client.cookies[COOKIE]


def test_pages_send_a_caller_without_a_sign_in_to_the_sign_in_page(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.get("/ui/jobs?limit=50")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/signin?next=/ui/jobs%3Flimit%3D50"
        client.cookies.set(COOKIE, "not-a-session")
        answer = client.get("/ui/jobs")
        assert answer.headers["location"].endswith("expired=1")
        page = client.get(answer.headers["location"])
        assert "expired" in page.text


def test_the_root_serves_the_dashboard_and_the_api_still_answers(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/").headers["location"] == "/ui/"
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/docs").status_code == 200
        assert client.get("/jobs").status_code == 401  # the API's answer, JSON
        assert client.get("/jobs").json()["error"]["code"]


def test_a_post_needs_the_sessions_csrf_token_and_this_sites_origin(server: Any) -> None:
    client, secret = _signed_in(server)
    with contextlib.closing(client):
        url = "/ui/jobs/" + "0" * 20 + "/tags"
        refused = client.post(url, data={"tags": "a"})
        assert refused.status_code == 403
        assert "security token" in refused.text
        wrong = client.post(url, data={"tags": "a", "csrf_token": csrf_token_for("other")})
        assert wrong.status_code == 403
        token = csrf_token_for(secret)
        elsewhere = client.post(
            url, data={"tags": "a", "csrf_token": token}, headers={"Origin": "http://evil.test"}
        )
        assert elsewhere.status_code == 403
        assert "another site" in elsewhere.text
        # With the token and from here, the request goes through: to the job's 404 page.
        allowed = client.post(
            url, data={"tags": "a", "csrf_token": token}, headers={"Origin": server.url}
        )
        assert allowed.status_code == 404
        assert "Traceback" not in allowed.text


def test_signing_out_revokes_the_session_on_the_server(server: Any) -> None:
    client, secret = _signed_in(server)
    with contextlib.closing(client):
        out = client.post("/ui/signout", data={"csrf_token": csrf_token_for(secret)})
        assert out.status_code == 303
        assert (
            client.get("/users/me", headers={"Authorization": f"Bearer {secret}"}).status_code
            == 401
        )


def test_bad_input_gets_a_readable_page(server: Any) -> None:
    client, _ = _signed_in(server)
    with contextlib.closing(client):
        answer = client.get("/ui/jobs", params={"after": "yesterday"})
        assert answer.status_code == 400
        assert "not a date" in answer.text
        assert client.get("/ui/jobs?offset=abc").status_code == 400
        missing = client.get("/ui/no/such/page")
        assert missing.status_code == 404
        assert "Not found" in missing.text
