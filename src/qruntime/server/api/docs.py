"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a machine without
internet they are blank. These load them from the server itself, under `ASSETS`: the
files of the ``fastapi-offline`` package, which ships released builds of both (and is
upgraded with them) so that none is copied into this repository. The pages take the
request's ``root_path``, as FastAPI's do, so they work behind a proxy that mounts the
API under a path.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install_docs"]

#: Where the pages' scripts, styles and icon are served.
ASSETS = "/static/docs"
#: The package whose ``static`` folder holds them.
ASSET_PACKAGE = "fastapi_offline"

# Swagger UI's options: no validator badge (it would fetch an image from the internet).
_SWAGGER_UI = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "validatorUrl": None,
    "displayRequestDuration": True,
}


def asset_folder() -> Path:
    """The folder of the pages' files: a package's, so they come with the installation."""
    return Path(str(files(ASSET_PACKAGE) / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve the assets and the two pages; create ``app`` with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=asset_folder()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters=_SWAGGER_UI,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,  # fonts from the internet: the page's own do
        )


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
