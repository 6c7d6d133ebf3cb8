"""The agent's HTTP client of the coordinator: enroll, heartbeat, claim (``heatgrid.protocol.v1``).

Two kinds of failure: :class:`CoordinatorUnavailableError` (no connection, a timeout, a 5xx or
429 answer: retry later with backoff, keep heating on local control) and
:class:`CoordinatorRefusedError` (a 4xx answer: the request is wrong or the token revoked;
retrying the same request will not help).
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from heatgrid.protocol import v1
from heatgrid.protocol.challenge import ChallengeCommit, ChallengeReveal, ChallengeVerdict

__all__ = ["CoordinatorClient", "CoordinatorRefusedError", "CoordinatorUnavailableError"]

_Answer = TypeVar("_Answer", bound=BaseModel)
_TOO_MANY_REQUESTS = 429


class CoordinatorUnavailableError(RuntimeError):
    """The coordinator could not be reached or failed; try again later."""


class CoordinatorRefusedError(RuntimeError):
    """The coordinator refused the request (4xx); the message holds its reason."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class CoordinatorClient:
    """Talks to one coordinator over HTTP.

    Parameters
    ----------
    url : str
        Base URL of the coordinator (``https://coordinator.example``).
    timeout_s : float
        Timeout of each request [s].
    transport : httpx.AsyncBaseTransport, optional
        Transport to use instead of the network (e.g. ``httpx.ASGITransport`` of an app).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> CoordinatorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def enroll(self, request: v1.EnrollRequest) -> v1.EnrollResponse:
        """Enroll with a one-time code; return the device id and token."""
        return await self._post("/v1/devices/enroll", request, v1.EnrollResponse, token=None)

    async def heartbeat(
        self, device_id: str, token: str, heartbeat: v1.Heartbeat
    ) -> v1.HeartbeatResponse:
        """Send telemetry and the heat window; return the coordinator's answer."""
        return await self._post(
            f"/v1/devices/{device_id}/heartbeat", heartbeat, v1.HeartbeatResponse, token=token
        )

    async def claim(self, device_id: str, token: str, request: v1.ClaimRequest) -> v1.ClaimResponse:
        """Ask for tasks; return the leases granted (possibly none)."""
        return await self._post(
            f"/v1/devices/{device_id}/claim", request, v1.ClaimResponse, token=token
        )

    async def commit_challenge(
        self, device_id: str, token: str, challenge_id: str, commit: ChallengeCommit
    ) -> ChallengeVerdict:
        """Commit to a hardware challenge's rows; return the places to show, or the failure."""
        return await self._post(
            f"/v1/devices/{device_id}/challenges/{challenge_id}/commit",
            commit,
            ChallengeVerdict,
            token=token,
        )

    async def reveal_challenge(
        self, device_id: str, token: str, challenge_id: str, reveal: ChallengeReveal
    ) -> ChallengeVerdict:
        """Show the rows asked for; return the verdict."""
        return await self._post(
            f"/v1/devices/{device_id}/challenges/{challenge_id}/reveal",
            reveal,
            ChallengeVerdict,
            token=token,
        )

    async def mining(self, device_id: str, token: str) -> v1.DeviceMining:
        """Return the device's mining as the coordinator's Stratum proxy counted it."""
        return await self._send(
            "GET", f"/v1/mining/devices/{device_id}", None, v1.DeviceMining, token=token
        )

    async def _post(
        self, path: str, body: BaseModel, answer: type[_Answer], *, token: str | None
    ) -> _Answer:
        return await self._send("POST", path, body, answer, token=token)

    async def _send(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        answer: type[_Answer],
        *,
        token: str | None,
    ) -> _Answer:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = body.model_dump_json() if body is not None else None
        where = f"{method} {self.url}{path}"
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as error:
            raise CoordinatorUnavailableError(
                f"{where}: {type(error).__name__}: {error}"
            ) from error
        if response.status_code >= 500 or response.status_code == _TOO_MANY_REQUESTS:
            raise CoordinatorUnavailableError(
                f"{where}: HTTP {response.status_code}: {response.text[:200]}"
            )
        if response.status_code >= 400:
            raise CoordinatorRefusedError(
                f"{where}: HTTP {response.status_code}: {_detail(response)}", response.status_code
            )
        try:
            return answer.model_validate_json(response.content, strict=False)
        except ValidationError as error:
            raise CoordinatorUnavailableError(f"{where}: unexpected answer: {error}") from error


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return str(body)[:500]
