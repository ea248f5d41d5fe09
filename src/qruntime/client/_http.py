"""The client's HTTP layer: login, the access token, and errors back into exceptions."""

from __future__ import annotations

import http.client
import json as jsonlib
import re
import threading
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from qruntime._version import __version__
from qruntime.client._plain import PlainLane, plain_lane_for
from qruntime.errors import NotAuthorizedError, QRuntimeError, error_class_for

__all__ = ["ApiClient", "raise_for_error"]

# A path that httpx's merge with the base URL leaves as it is: no quoting, no dot segments.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_\-]+)+")
# What either lane raises when the server cannot be reached or answers nonsense.
_TRANSPORT_ERRORS = (httpx.TransportError, OSError, http.client.HTTPException)


def raise_for_error(response: httpx.Response) -> None:
    """Turn an error response into the named exception the server meant (the one place)."""
    if response.status_code < 400:
        return
    message, code = response.text or response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("error")
        if not isinstance(detail, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            detail = body["errors"][0]
        if isinstance(detail, dict):
            message = str(detail.get("message", message))
            code = detail.get("code") if isinstance(detail.get("code"), str) else None
    cls = error_class_for(code, response.status_code)
    raise cls(message, status_code=response.status_code)


class ApiClient:
    """Sends requests to one qruntime server with a short-lived access token.

    The API token is exchanged for an access token on the first request and again
    whenever the server says the access token is no longer valid (expired, or
    revoked by ``logout``). The transport can be injected for tests. Requests to a
    plain-HTTP server reached directly take a leaner lane than httpx (``_plain.py``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._api_token = token
        self._access_token: str | None = None
        self._lock = threading.Lock()
        user_agent = f"qruntime-client/{__version__}"
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"User-Agent": user_agent},
        )
        self._lane: PlainLane | None = None
        if transport is None:
            self._lane = plain_lane_for(self.url, timeout=timeout, user_agent=user_agent)
        # Each request names its absolute URL when it can: the URL is then parsed once,
        # where merging a path into the base URL and adding the query parses it three times.
        base = str(self._http.base_url)  # it ends with "/", unless its path is empty
        if "?" in base or "#" in base:
            self._prefix: str | None = None  # odd: let httpx merge
        else:
            self._prefix = base.removesuffix("/")

    @property
    def access_token(self) -> str:
        with self._lock:
            if self._access_token is None:
                self._access_token = self._login()
            return self._access_token

    def _login(self) -> str:
        response = self._unauthenticated("/users/loginWithToken", {"apiToken": self._api_token})
        raise_for_error(response)
        token: str = response.json()["id"]
        return token

    def _unauthenticated(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """A POST outside the access-token dance (logging in and out)."""
        try:
            if self._lane is not None and _PLAIN_PATH.fullmatch(path):
                return self._send_plain(
                    self._lane, "POST", path, None, body, None, headers or {}, None
                )
            return self._http.post(path, json=body, headers=headers)
        except _TRANSPORT_ERRORS as exc:
            raise self._unreachable(exc) from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request; raise the named error for a 4xx/5xx answer."""
        for attempt in (1, 2):
            token = self.access_token
            all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
            extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
            url: httpx.URL | str = path
            query = _clean(params)
            plain_path = _PLAIN_PATH.fullmatch(path) is not None
            try:
                if self._lane is not None and plain_path:
                    response = self._send_plain(
                        self._lane, method, path, query, json, content, all_headers, timeout
                    )
                else:
                    if self._prefix is not None and plain_path:
                        url, query = httpx.URL(self._prefix + path, params=query), None
                    response = self._http.request(
                        method,
                        url,
                        json=json,
                        params=query,
                        content=content,
                        headers=all_headers,
                        **extra,
                    )
            except _TRANSPORT_ERRORS as exc:
                raise self._unreachable(exc) from exc
            if response.status_code == 401 and attempt == 1:
                with self._lock:  # log in again once: the access token expired or was revoked
                    if self._access_token == token:
                        self._access_token = None
                continue
            raise_for_error(response)
            return response
        raise NotAuthorizedError("The server refused a fresh access token.")  # pragma: no cover

    def _unreachable(self, exc: Exception) -> QRuntimeError:
        return QRuntimeError(f"Cannot reach the qruntime server at {self.url}: {exc}")

    @staticmethod
    def _send_plain(
        lane: PlainLane,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        json: Any,
        content: bytes | str | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> httpx.Response:
        """``request`` on the plain lane: the same query and body httpx would send."""
        target = path
        if query:
            target += "?" + urlencode(query, doseq=True, quote_via=quote)
        body: bytes | None = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers = {"Content-Type": "application/json", **headers}
        elif content is not None:
            body = content.encode() if isinstance(content, str) else content
        elif method in ("POST", "PUT", "PATCH"):
            body = b""  # as httpx: an empty body is sent with its length
        return lane.request(method, target, body=body, headers=headers, timeout=timeout)

    def get_json(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def logout(self) -> None:
        """Revoke the current access token on the server (a later request logs in again)."""
        with self._lock:
            token, self._access_token = self._access_token, None
        if token is None:
            return
        response = self._unauthenticated("/logout", headers={"Authorization": f"Bearer {token}"})
        raise_for_error(response)

    def close(self) -> None:
        if self._lane is not None:
            self._lane.close()
        self._http.close()


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    cleaned: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        cleaned[key] = str(value).lower() if isinstance(value, bool) else value
    return cleaned
