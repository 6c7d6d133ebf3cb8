"""The two apps the coordinator benchmark serves with uvicorn, the same way and worker count.

Both are uvicorn factories (``uvicorn --factory --app-dir bench _apps:NAME``), so uvicorn can
run several worker processes of each:

* :func:`coordinator`: the real coordinator app (``heatgrid.coordinator.app.create_app``) on
  the database in ``HEATGRID_DATABASE_URL``, logging as ``heatgrid serve`` does (JSON lines on
  stderr at ``HEATGRID_BENCH_LOG_LEVEL``), checkpoints in ``HEATGRID_BENCH_CHECKPOINTS``.
* :func:`echo`: the baseline, a bare FastAPI app whose one route answers the JSON it is sent.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Body, FastAPI

__all__ = ["ECHO_PATH", "coordinator", "echo"]

ECHO_PATH = "/echo"
"""The echo app's one route (POST, JSON in, the same JSON out)."""


def coordinator() -> FastAPI:
    """Build the coordinator app from the environment (see the module's docstring)."""
    from heatgrid.coordinator.app import create_app  # noqa: PLC0415 - only in that server
    from heatgrid.coordinator.db import check_schema, make_engine  # noqa: PLC0415
    from heatgrid.coordinator.logs import configure_logging  # noqa: PLC0415
    from heatgrid.coordinator.settings import Settings  # noqa: PLC0415

    url = os.environ["HEATGRID_DATABASE_URL"]
    engine = make_engine(url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()
    configure_logging(os.environ.get("HEATGRID_BENCH_LOG_LEVEL", "info"))
    return create_app(
        Settings(database_url=url, checkpoint_url=os.environ["HEATGRID_BENCH_CHECKPOINTS"])
    )


def echo() -> FastAPI:
    """Build the baseline app: ``POST /echo`` answers its JSON body."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(ECHO_PATH)
    def answer(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return body

    return app
