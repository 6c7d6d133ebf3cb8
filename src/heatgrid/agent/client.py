"""The agent's HTTP client of the coordinator (``heatgrid.protocol.v1``).

Enrollment, heartbeats and claims; for each leased task: progress (its energy, which renews the
lease), checkpoint upload (one ``PUT`` of the blob) and download, completion and failure.

Two kinds of failure: :class:`CoordinatorUnavailableError` (no connection, a timeout, a 5xx or
429 answer: retry later with backoff, keep heating on local control) and
:class:`CoordinatorRefusedError` (a 4xx answer: the request is wrong or the token revoked;
retrying the same request will not help).
"""

from __future__ import annotations

import hashlib
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

    async def progress(
        self, device_id: str, token: str, task_id: str, report: v1.TaskProgress
    ) -> v1.TaskStatus:
        """Report an attempt's energy so far; renews its lease (``stop``: the lease is gone)."""
        return await self._post(
            f"/v1/devices/{device_id}/tasks/{task_id}/progress", report, v1.TaskStatus, token=token
        )

    async def complete(
        self, device_id: str, token: str, task_id: str, report: v1.TaskCompletion
    ) -> v1.TaskStatus:
        """Hand in an attempt's result."""
        return await self._post(
            f"/v1/devices/{device_id}/tasks/{task_id}/complete", report, v1.TaskStatus, token=token
        )

    async def fail(
        self, device_id: str, token: str, task_id: str, report: v1.TaskFailure
    ) -> v1.TaskStatus:
        """Report a failed (or handed back) attempt; the task is retried elsewhere."""
        return await self._post(
            f"/v1/devices/{device_id}/tasks/{task_id}/fail", report, v1.TaskStatus, token=token
        )

    async def put_checkpoint(
        self,
        device_id: str,
        token: str,
        task_id: str,
        *,
        attempt: int,
        energy_j: float,
        blob: bytes,
    ) -> v1.CheckpointReceipt:
        """Upload a checkpoint taken after the attempt burned ``energy_j`` [J] (one ``PUT``).

        Raises
        ------
        CoordinatorUnavailableError
            Also when the coordinator stored other bytes than those sent (hash mismatch).
        """
        path = f"/v1/devices/{device_id}/tasks/{task_id}/checkpoint"
        response = await self._send(
            "PUT",
            path,
            content=blob,
            content_type="application/octet-stream",
            token=token,
            params={"attempt": attempt, "energy_j": energy_j},
        )
        receipt = _parse(response, v1.CheckpointReceipt, f"PUT {self.url}{path}")
        if receipt.sha256 != hashlib.sha256(blob).hexdigest():
            raise CoordinatorUnavailableError(
                f"PUT {self.url}{path}: the coordinator stored checkpoint {receipt.seq} with "
                "another hash than the bytes sent"
            )
        return receipt

    async def get_checkpoint(self, device_id: str, token: str, task_id: str, seq: int) -> bytes:
        """Download checkpoint ``seq`` of a task leased to this device; its hash is checked.

        Raises
        ------
        CoordinatorUnavailableError
            Also when the bytes do not match the hash the coordinator names.
        """
        path = f"/v1/devices/{device_id}/tasks/{task_id}/checkpoints/{seq}"
        response = await self._send("GET", path, token=token)
        data = response.content
        expected = response.headers.get("X-Checkpoint-Sha256")
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise CoordinatorUnavailableError(
                f"GET {self.url}{path}: the checkpoint's bytes do not match its hash {expected}"
            )
        return data

    async def _post(
        self, path: str, body: BaseModel, answer: type[_Answer], *, token: str | None
    ) -> _Answer:
        response = await self._send(
            "POST",
            path,
            content=body.model_dump_json().encode(),
            content_type="application/json",
            token=token,
        )
        return _parse(response, answer, f"POST {self.url}{path}")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, int | float] | None = None,
    ) -> httpx.Response:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        what = f"{method} {self.url}{path}"
        try:
            response = await self._http.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.HTTPError as error:
            raise CoordinatorUnavailableError(f"{what}: {type(error).__name__}: {error}") from error
        if response.status_code >= 500 or response.status_code == _TOO_MANY_REQUESTS:
            raise CoordinatorUnavailableError(
                f"{what}: HTTP {response.status_code}: {response.text[:200]}"
            )
        if response.status_code >= 400:
            raise CoordinatorRefusedError(
                f"{what}: HTTP {response.status_code}: {_detail(response)}", response.status_code
            )
        return response


def _parse(response: httpx.Response, answer: type[_Answer], what: str) -> _Answer:
    try:
        return answer.model_validate_json(response.content, strict=False)
    except ValidationError as error:
        raise CoordinatorUnavailableError(f"{what}: unexpected answer: {error}") from error


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return str(body)[:500]
