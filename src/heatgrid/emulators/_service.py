"""``async with`` for the emulators: start on entry, stop on exit, whatever happened."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncService"]


class AsyncService:
    """Base of an emulator that runs between ``await start()`` and ``await stop()``."""

    async def start(self) -> None:
        """Start serving (subclasses do the work)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop serving and release what :meth:`start` took (subclasses do the work)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
