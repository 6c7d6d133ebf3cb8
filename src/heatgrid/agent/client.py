"""The agent's HTTP client of the coordinator: enroll, heartbeat, claim (``heatgrid.protocol.v1``).

Two kinds of failure: :class:`CoordinatorUnavailableError` (no connection, a timeout, a 5xx or
429 answer: retry later with backoff, keep heating on local control) and
:class:`CoordinatorRefusedError` (a 4xx answer: the request is wrong or the token revoked;
retrying the same request will not help). A downloaded artifact whose bytes do not have the
SHA-256 that names it raises :class:`ArtifactMismatchError` and leaves no file behind; a
checkpoint whose bytes do not have the hash the coordinator recorded,
:class:`CheckpointMismatchError`.

Checkpoints go up in chunks named by their SHA-256 (:meth:`CoordinatorClient.upload_checkpoint`):
the client asks which chunks the coordinator lacks and sends only those, so calling it again
after a failure (or after the agent restarts) resumes the upload instead of starting over.

Answers are parsed with :func:`heatgrid.protocol.wire.parse_response`: a field this agent does
not know (added by a newer coordinator) is ignored, at any depth; a missing or out-of-range
field is still an unexpected answer (:class:`CoordinatorUnavailableError`).

Requests go the other way: the client leaves every field at its default out of a body, and a
coordinator older than a field the agent does use refuses it (422, ``Extra inputs are not
permitted``). When every error of such a 422 names an informational field of the body
(:data:`heatgrid.protocol.informational.INFORMATIONAL`: one an older coordinator would not use
anyway), the request is sent once more without those fields, with a warning to update the
coordinator, and they are left out of that kind of request for :data:`REFUSED_FIELD_RETRY_S`
(then tried again, in case the coordinator was updated). Any other refusal stays a refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from heatgrid.jobs.artifact import artifact_path
from heatgrid.protocol import v1
from heatgrid.protocol.challenge import (
    ChallengeCommit,
    ChallengeReveal,
    ChallengeSeal,
    ChallengeVerdict,
)
from heatgrid.protocol.informational import informational_fields
from heatgrid.protocol.jobs import MAX_ARTIFACT_BYTES, CheckpointMark
from heatgrid.protocol.wire import parse_response

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "REFUSED_FIELD_RETRY_S",
    "ArtifactMismatchError",
    "CheckpointMismatchError",
    "CoordinatorClient",
    "CoordinatorRefusedError",
    "CoordinatorUnavailableError",
]

_Answer = TypeVar("_Answer", bound=BaseModel)
_TOO_MANY_REQUESTS = 429
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NO_CONTENT = 204
_UNPROCESSABLE = 422
_EXTRA_FORBIDDEN = "extra_forbidden"  # pydantic's error type for an unknown field
_log = logging.getLogger(__name__)

REFUSED_FIELD_RETRY_S = 3600.0
"""How long an informational field an older coordinator refused is left out of that kind of
request before it is sent again [s]."""

DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024
"""Size of the chunks a checkpoint is uploaded in [bytes]: what a failed upload may resend."""


class CoordinatorUnavailableError(RuntimeError):
    """The coordinator could not be reached or failed; try again later."""


class CoordinatorRefusedError(RuntimeError):
    """The coordinator refused the request (4xx); the message holds its reason."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class CheckpointMismatchError(RuntimeError):
    """A downloaded checkpoint's bytes do not have the SHA-256 the coordinator recorded."""


class ArtifactMismatchError(RuntimeError):
    """A downloaded artifact is not the one asked for (its SHA-256 differs, or it is too large).

    Nothing was kept. The task must not run from it; the message names both hashes.
    """

    def __init__(self, message: str, expected_sha256: str, received_sha256: str | None) -> None:
        super().__init__(message)
        self.expected_sha256 = expected_sha256
        self.received_sha256 = received_sha256


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
    token : str, optional
        The device token used by the methods that are not given one (artifacts, checkpoints).
    device_id : str, optional
        This device's id, used by the checkpoint methods that are not given one.
    clock : callable, optional
        Returns seconds [s] (monotonic by default); times how long a refused informational
        field is left out (:data:`REFUSED_FIELD_RETRY_S`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
        device_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.device_id = device_id
        self._clock = clock
        self._refused_ts: dict[tuple[type[BaseModel], str], float] = {}
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

    async def seal_challenge(
        self, device_id: str, token: str, challenge_id: str, seal: ChallengeSeal
    ) -> ChallengeVerdict:
        """Seal the working set's blocks to show (timed); return the verdict (still committed)."""
        return await self._post(
            f"/v1/devices/{device_id}/challenges/{challenge_id}/seal",
            seal,
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
        return await self._exchange(
            "GET", f"/v1/mining/devices/{device_id}", None, v1.DeviceMining, token=token
        )

    async def mining_credentials(self, device_id: str, token: str) -> v1.MiningCredentials:
        """Return where the device mines (the proxy's URL, the user; no password)."""
        return await self._exchange(
            "GET",
            f"/v1/devices/{device_id}/mining-credentials",
            None,
            v1.MiningCredentials,
            token=token,
        )

    async def issue_mining_credentials(self, device_id: str, token: str) -> v1.MiningCredentials:
        """Issue a new mining password (the one in force stops working) and return it."""
        return await self._exchange(
            "POST",
            f"/v1/devices/{device_id}/mining-credentials",
            None,
            v1.MiningCredentials,
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
        """Report a failed attempt; the task is retried elsewhere, with backoff."""
        return await self._post(
            f"/v1/devices/{device_id}/tasks/{task_id}/fail", report, v1.TaskStatus, token=token
        )

    async def hand_back(
        self, device_id: str, token: str, task_id: str, report: v1.TaskHandBack
    ) -> v1.TaskStatus:
        """Give a task back on purpose; it resumes elsewhere, not counted as a failed attempt."""
        return await self._post(
            f"/v1/devices/{device_id}/tasks/{task_id}/hand-back",
            report,
            v1.TaskStatus,
            token=token,
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
        content = await self._send(
            "PUT",
            path,
            {**self._headers(token), "Content-Type": "application/octet-stream"},
            content=blob,
            params={"attempt": attempt, "energy_j": energy_j},
        )
        receipt = _parsed(v1.CheckpointReceipt, content, f"PUT {self.url}{path}")
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
        response = await self._response("GET", path, self._headers(token))
        data = response.content
        expected = response.headers.get("X-Checkpoint-Sha256")
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise CoordinatorUnavailableError(
                f"GET {self.url}{path}: the checkpoint's bytes do not match its hash {expected}"
            )
        return data

    async def fetch_artifact(
        self,
        sha256: str,
        dest_dir: Path,
        *,
        token: str | None = None,
        max_bytes: int = MAX_ARTIFACT_BYTES,
    ) -> Path:
        """Download the artifact ``sha256`` into ``dest_dir``, check its hash, return its path.

        The file is ``dest_dir/SHA256.tar.gz`` (:func:`heatgrid.jobs.artifact.artifact_path`);
        one already there with the right hash is kept without a download. The bytes are hashed
        as they arrive into a temporary name, and moved into place only when they match.

        Parameters
        ----------
        sha256 : str
            SHA-256 of the artifact, 64 lower-case hex digits (a lease's ``artifact.sha256``).
        dest_dir : Path
            Directory for artifacts; created if missing.
        token : str, optional
            The device token; default the client's ``token``.
        max_bytes : int
            Largest download accepted [bytes].

        Raises
        ------
        ArtifactMismatchError
            The bytes received do not have that SHA-256, or are more than ``max_bytes``.
        CoordinatorRefusedError
            4xx: not found, or this device holds no lease on a task that runs it.
        CoordinatorUnavailableError
            No connection, a timeout, or a 5xx or 429 answer: try again later.
        """
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256: {sha256!r} is not 64 lower-case hex digits")
        target = artifact_path(dest_dir, sha256)
        if target.is_file() and _file_sha256(target) == sha256:
            return target
        dest_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        path = f"/v1/artifacts/{sha256}"
        try:
            received = await self._download(path, partial, token=token, max_bytes=max_bytes)
            if received != sha256:
                raise ArtifactMismatchError(
                    f"GET {self.url}{path}: the bytes received have SHA-256 {received}, not "
                    f"{sha256}; the artifact is corrupt or was tampered with, nothing was kept",
                    sha256,
                    received,
                )
            partial.replace(target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return target

    async def upload_checkpoint(
        self,
        task_id: str,
        path_or_bytes: Path | bytes,
        *,
        attempt: int,
        energy_j: float,
        device_id: str | None = None,
        token: str | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        mark: CheckpointMark | None = None,
    ) -> v1.CheckpointReceipt:
        """Upload a checkpoint in chunks, sending only those the coordinator lacks; commit it.

        Called again after a failure with the same bytes, it resumes: the chunks that arrived
        before are not sent again.

        Parameters
        ----------
        task_id : str
            The leased task.
        path_or_bytes : Path or bytes
            The checkpoint: a file, or its bytes.
        attempt : int
            The attempt, as leased.
        energy_j : float
            Energy the attempt burned when the checkpoint was taken [J].
        chunk_bytes : int
            Size of each chunk [bytes].
        mark : CheckpointMark, optional
            The training step and tensor fingerprint the task gave with the checkpoint.

        Returns
        -------
        v1.CheckpointReceipt
            Its number, hash and the renewed lease.
        """
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes: {chunk_bytes} must be at least 1")
        base = self._task_path(task_id, device_id)
        headers = self._headers(token)
        # hashing and reading a big file happen in a thread: the control loop keeps ticking
        chunks, whole_sha256, size_bytes = await asyncio.to_thread(
            _chunk_hashes, path_or_bytes, chunk_bytes
        )
        if size_bytes == 0:
            raise ValueError("path_or_bytes: a checkpoint holds at least one byte")
        query = v1.CheckpointChunkQuery(attempt=attempt, chunks=[sha for sha, _ in chunks])
        answer = await self._send(
            "POST", f"{base}/checkpoint-chunks/missing", headers, json_body=query
        )
        where = f"POST {self.url}{base}/checkpoint-chunks/missing"
        missing = set(_parsed(v1.CheckpointChunksMissing, answer, where).missing)
        for sha256, offset in chunks:
            if sha256 not in missing:
                continue
            missing.discard(sha256)
            await self._send(
                "PUT",
                f"{base}/checkpoint-chunks/{sha256}",
                {**headers, "Content-Type": "application/octet-stream"},
                params={"attempt": attempt},
                content=await asyncio.to_thread(_read_chunk, path_or_bytes, offset, chunk_bytes),
            )
        commit = v1.CheckpointCommit(
            attempt=attempt,
            energy_j=energy_j,
            chunks=[sha for sha, _ in chunks],
            sha256=whole_sha256,
            size_bytes=size_bytes,
            step=None if mark is None else mark.step,
            fingerprint=None if mark is None else mark.fingerprint,
        )
        answer = await self._send("POST", f"{base}/checkpoints", headers, json_body=commit)
        return _parsed(v1.CheckpointReceipt, answer, f"POST {self.url}{base}/checkpoints")

    async def download_checkpoint(
        self, task_id: str, *, device_id: str | None = None, token: str | None = None
    ) -> bytes | None:
        """Return the newest checkpoint of a task this device holds, or None if it has none.

        Raises
        ------
        CheckpointMismatchError
            The bytes received do not have the SHA-256 the coordinator recorded.
        """
        path = f"{self._task_path(task_id, device_id)}/checkpoint"
        try:
            response = await self._http.get(path, headers=self._headers(token))
        except httpx.HTTPError as error:
            raise CoordinatorUnavailableError(
                f"GET {self.url}{path}: {type(error).__name__}: {error}"
            ) from error
        _raise_for_status("GET", f"{self.url}{path}", response, response.content)
        if response.status_code == _NO_CONTENT:
            return None
        expected = response.headers.get("X-Checkpoint-Sha256", "")
        received = hashlib.sha256(response.content).hexdigest()
        if received != expected:
            raise CheckpointMismatchError(
                f"GET {self.url}{path}: the bytes received have SHA-256 {received}, not "
                f"{expected or '(none given)'} as recorded; the checkpoint is corrupt"
            )
        return response.content

    def _task_path(self, task_id: str, device_id: str | None) -> str:
        device_id = device_id if device_id is not None else self.device_id
        if device_id is None:
            raise ValueError("device_id: none given, and the client has none")
        return f"/v1/devices/{device_id}/tasks/{task_id}"

    async def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        json_body: BaseModel | None = None,
        **kwargs: object,
    ) -> bytes:
        """Send a request; return the answer's body, or raise the client's error."""
        response = await self._response(method, path, headers, json_body=json_body, **kwargs)
        return response.content

    async def _response(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        json_body: BaseModel | None = None,
        **kwargs: object,
    ) -> httpx.Response:
        """Send a request; return the answer, or raise the client's error.

        A JSON body whose informational fields an older coordinator refuses is sent once more
        without them (see the module's docstring).
        """
        where = f"{method} {self.url}{path}"
        if json_body is None:
            response = await self._request(where, method, path, headers, **kwargs)
        else:
            headers = {**headers, "Content-Type": "application/json"}
            model = type(json_body)
            left_out = self._left_out(model)
            body = _body(json_body, left_out)
            response = await self._request(where, method, path, headers, content=body, **kwargs)
            refused = (
                _refused_informational(json_body, response.content) - left_out
                if response.status_code == _UNPROCESSABLE
                else frozenset()
            )
            if refused:  # once: a second refusal is the coordinator's answer
                self._warn_refused(model, refused, where)
                body = _body(json_body, left_out | refused)
                response = await self._request(where, method, path, headers, content=body, **kwargs)
        _raise_for_status(method, f"{self.url}{path}", response, response.content)
        return response

    async def _request(
        self, where: str, method: str, path: str, headers: dict[str, str], **kwargs: object
    ) -> httpx.Response:
        """Send one request; return the answer, whatever its status."""
        try:
            return await self._http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            raise CoordinatorUnavailableError(
                f"{where}: {type(error).__name__}: {error}"
            ) from error

    def _left_out(self, model: type[BaseModel]) -> frozenset[str]:
        """Return the informational fields of ``model`` an older coordinator refused lately."""
        now = self._clock()
        return frozenset(
            field
            for (owner, field), refused_ts in self._refused_ts.items()
            if owner is model and now - refused_ts < REFUSED_FIELD_RETRY_S
        )

    def _warn_refused(self, model: type[BaseModel], fields: frozenset[str], where: str) -> None:
        now = self._clock()
        for field in fields:
            self._refused_ts[(model, field)] = now
        _log.warning(
            "%s: the coordinator does not know %s of %s (it is older than this agent): sent "
            "again without, and left out for %.0f s; update the coordinator",
            where,
            ", ".join(sorted(fields)),
            model.__name__,
            REFUSED_FIELD_RETRY_S,
        )

    def _headers(self, token: str | None) -> dict[str, str]:
        token = token if token is not None else self.token
        if token is None:
            raise ValueError(
                "token: none given, and the client has none (CoordinatorClient(token=…))"
            )
        return {"Authorization": f"Bearer {token}"}

    async def _download(
        self, path: str, partial: Path, *, token: str | None, max_bytes: int
    ) -> str:
        """Stream GET ``path`` into ``partial``; return the SHA-256 of what arrived."""
        digest = hashlib.sha256()
        size_bytes = 0
        try:
            async with self._http.stream("GET", path, headers=self._headers(token)) as response:
                _raise_for_status("GET", f"{self.url}{path}", response, await _peek(response))
                with partial.open("wb") as blob:
                    async for chunk in response.aiter_bytes():
                        size_bytes += len(chunk)
                        if size_bytes > max_bytes:
                            raise ArtifactMismatchError(
                                f"GET {self.url}{path}: more than {max_bytes} bytes; refused",
                                path.rsplit("/", 1)[1],
                                None,
                            )
                        digest.update(chunk)
                        blob.write(chunk)
        except httpx.HTTPError as error:
            raise CoordinatorUnavailableError(
                f"GET {self.url}{path}: {type(error).__name__}: {error}"
            ) from error
        return digest.hexdigest()

    async def _post(
        self, path: str, body: BaseModel, answer: type[_Answer], *, token: str | None
    ) -> _Answer:
        return await self._exchange("POST", path, body, answer, token=token)

    async def _exchange(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        answer: type[_Answer],
        *,
        token: str | None,
    ) -> _Answer:
        """Send ``body`` (JSON, if any) and parse the answer as ``answer``."""
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        content = await self._send(method, path, headers, json_body=body)
        return _parsed(answer, content, f"{method} {self.url}{path}")


def _body(message: BaseModel, left_out: frozenset[str]) -> str:
    """Return ``message`` as JSON without its fields at their default nor ``left_out``.

    Fields at their default are left out: the coordinator's model fills in the same defaults,
    and a coordinator older than an optional field, which refuses unknown fields, sees it only
    when the agent really uses it.
    """
    return message.model_dump_json(exclude_defaults=True, exclude=set(left_out) or None)


def _refused_informational(message: BaseModel, content: bytes) -> frozenset[str]:
    """Return the informational fields of ``message`` a 422's body refuses as unknown.

    Empty unless *every* error of the answer (the coordinator's ``errors``: field, message,
    type) is pydantic's ``extra_forbidden`` ("Extra inputs are not permitted") on a top-level
    field of ``message`` listed in :data:`heatgrid.protocol.informational.INFORMATIONAL`.
    """
    try:
        answer = json.loads(content)
    except ValueError:
        return frozenset()
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if not isinstance(errors, list) or not errors:
        return frozenset()
    allowed = informational_fields(type(message))
    fields = set()
    for error in errors:
        if not isinstance(error, dict) or error.get("type") != _EXTRA_FORBIDDEN:
            return frozenset()
        field = error.get("field")
        if field not in allowed:
            return frozenset()
        fields.add(str(field))
    return frozenset(fields)


def _parsed(answer: type[_Answer], content: bytes, where: str) -> _Answer:
    """Parse an answer of the coordinator: fields this agent does not know are ignored."""
    try:
        return parse_response(answer, content)
    except ValidationError as error:
        raise CoordinatorUnavailableError(f"{where}: unexpected answer: {error}") from error


def _chunk_hashes(
    path_or_bytes: Path | bytes, chunk_bytes: int
) -> tuple[list[tuple[str, int]], str, int]:
    """Return ((SHA-256, offset) of each chunk, SHA-256 of the whole, size [bytes])."""
    whole = hashlib.sha256()
    chunks: list[tuple[str, int]] = []
    offset = 0
    if isinstance(path_or_bytes, bytes):
        pieces: Iterator[bytes] = (
            path_or_bytes[start : start + chunk_bytes]
            for start in range(0, len(path_or_bytes), chunk_bytes)
        )
    else:
        pieces = _file_pieces(path_or_bytes, chunk_bytes)
    for piece in pieces:
        whole.update(piece)
        chunks.append((hashlib.sha256(piece).hexdigest(), offset))
        offset += len(piece)
    return chunks, whole.hexdigest(), offset


def _file_pieces(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    with path.open("rb") as blob:
        while piece := blob.read(chunk_bytes):
            yield piece


def _read_chunk(path_or_bytes: Path | bytes, offset: int, chunk_bytes: int) -> bytes:
    if isinstance(path_or_bytes, bytes):
        return path_or_bytes[offset : offset + chunk_bytes]
    with path_or_bytes.open("rb") as blob:
        blob.seek(offset)
        return blob.read(chunk_bytes)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as blob:
        while chunk := blob.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _peek(response: httpx.Response) -> bytes:
    """Return the body of an error answer (read in full), or nothing for a success."""
    if response.status_code >= 400:
        return await response.aread()
    return b""


def _raise_for_status(method: str, where: str, response: httpx.Response, content: bytes) -> None:
    """Raise the client's error for a 5xx or 429 (unavailable) or other 4xx (refused) answer."""
    if response.status_code >= 500 or response.status_code == _TOO_MANY_REQUESTS:
        text = content.decode(errors="replace")[:200]
        raise CoordinatorUnavailableError(f"{method} {where}: HTTP {response.status_code}: {text}")
    if response.status_code >= 400:
        raise CoordinatorRefusedError(
            f"{method} {where}: HTTP {response.status_code}: {_detail(content)}",
            response.status_code,
        )


def _detail(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return content.decode(errors="replace")[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return str(body)[:500]
