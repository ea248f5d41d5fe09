"""``/docs`` and ``/redoc`` work offline: every script, style and icon comes from the server."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

import httpx

#: What an asset's Content-Type must say, by its extension.
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _page_urls(html: str) -> list[str]:
    """Every URL the page loads: scripts, styles, icons, and the OpenAPI document."""
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(
        r"url: '([^']+)'", html
    )


def test_doc_pages_load_everything_from_the_server(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for page in ("/docs", "/redoc"):
            answer = http.get(page)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/html")
            html = answer.text
            assert "cdn" not in html.lower()
            urls = _page_urls(html)
            assert "/openapi.json" in urls, page
            assets = [url for url in urls if url != "/openapi.json"]
            assert any(url.endswith(".js") for url in assets), page
            for url in urls:
                # Nothing from another host: a relative URL on this server.
                assert not re.match(r"^([a-z]+:)?//", url), (page, url)
                assert urljoin(f"{server.url}{page}", url).startswith(server.url)
            for url in assets:
                assert url.startswith("/static/docs/"), (page, url)
                asset = http.get(url)
                assert asset.status_code == 200, url
                suffix = url[url.rfind(".") :]
                assert CONTENT_TYPES[suffix] in asset.headers["content-type"], url
                assert len(asset.content) > 1000, url
        assert http.get("/openapi.json").json()["components"]["securitySchemes"]
