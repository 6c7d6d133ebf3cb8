"""The coordinator's web dashboard: server-rendered pages, vendored assets, live updates.

:func:`mount` adds it to an app at ``/`` (pages), ``/login``, ``/logout``, ``/events/…``
(server-sent events) and ``/static/…`` (assets). Jinja2 is imported on the first page served.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Add the dashboard's routes and its static files to ``app``."""
    from fastapi.staticfiles import StaticFiles  # noqa: PLC0415

    from heatgrid.coordinator.dashboard.routes import STATIC_DIR, router  # noqa: PLC0415

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
