"""Structured logs: one JSON object per line, with the fields a log pipeline can index."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

__all__ = ["CurrentStderrHandler", "JsonFormatter", "configure_logging"]

_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: ``ts``, ``level``, ``logger``, ``message``, extras.

    Extras are the ``extra={...}`` fields of the logging call; an exception becomes
    ``exc_type``, ``exc_message`` and ``traceback`` fields inside the one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        entry: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc_message"] = str(record.exc_info[1])
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever ``sys.stderr`` is when a record is emitted.

    A handler holding the ``sys.stderr`` of the moment it was made writes into a closed stream
    once that stream is replaced and closed (a command run in-process, as by tests that capture
    output), and logging prints "Logging error" tracebacks instead of the record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignore: the stream is always the current ``sys.stderr``."""


def configure_logging(level: str = "INFO") -> None:
    """Send every log record (heatgrid's, uvicorn's, SQLAlchemy's) to stderr as JSON lines."""
    handler = CurrentStderrHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our own access log carries the route and duration; uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
