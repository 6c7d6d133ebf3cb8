"""Checkpoints uploaded in chunks, resumably, on SQLite and PostgreSQL, to a local store and to
S3 (moto's S3-compatible server, started here on a loopback port and killed by its PID).

The agent's ``CoordinatorClient.upload_checkpoint`` sends only the chunks the coordinator
lacks: after a connection that drops mid-upload, the next call sends the rest and no chunk
twice (counted by the coordinator's own request metrics). Only the newest ``checkpoint_keep``
checkpoints keep their blobs; older ones answer 410.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import fsspec
import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from heatgrid.agent.client import (
    CoordinatorClient,
    CoordinatorRefusedError,
    CoordinatorUnavailableError,
)
from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Checkpoint
from heatgrid.coordinator.settings import Settings
from heatgrid.jobs.sdk import tensor_fingerprint
from heatgrid.protocol.jobs import CheckpointMark

from .conftest import Coordinator
from .serve_process import free_port

pytestmark = pytest.mark.usefixtures("backend")

KEEP = 2
CHUNK_BYTES = 1024
MAX_CHECKPOINT_BYTES = 64 * 1024
WEEK_S = 7 * 86_400.0
_CHUNK_ROUTE = "/v1/devices/{device_id}/tasks/{task_id}/checkpoint-chunks/{sha256}"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """No rate limit; keep two checkpoints per task; checkpoints of at most 64 KiB."""
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 1_000_000,
        "anonymous_rate_limit_per_s": 1e9,
        "anonymous_rate_limit_burst": 1_000_000,
        "checkpoint_keep": KEEP,
        "max_checkpoint_bytes": MAX_CHECKPOINT_BYTES,
    }


def _leased_task(
    http: Any, operator_key: str, now_ts: float, suffix: str = ""
) -> tuple[str, str, str, int]:
    """Enroll a CPU heater, submit a one-task job, claim it: (device, token, task, attempt)."""
    auth = {"Authorization": f"Bearer {operator_key}"}

    def ok(answer: httpx.Response, status: int = 200) -> Any:
        assert answer.status_code == status, answer.text
        return answer.json()

    owner = ok(
        http.post(
            "/v1/admin/keys", json={"name": f"olivia{suffix}", "role": "owner"}, headers=auth
        ),
        201,
    )
    owner_auth = {"Authorization": f"Bearer {owner['api_key']}"}
    code = ok(http.post("/v1/admin/enrollment-codes", json={}, headers=owner_auth), 201)
    enrolled = ok(
        http.post(
            "/v1/devices/enroll",
            json={
                "enrollment_code": code["enrollment_code"],
                "device_name": "kitchen",
                "device_kind": "cpu",
                "hardware": {"max_power_w": 200.0},
                "has_room": True,
            },
        ),
        201,
    )
    device_id, token = enrolled["device_id"], enrolled["device_token"]
    device_auth = {"Authorization": f"Bearer {token}"}
    window = [{"start_ts": now_ts, "duration_s": WEEK_S, "heat_power_w": 200.0}]
    ok(
        http.post(
            f"/v1/devices/{device_id}/heartbeat",
            json={"sent_ts": now_ts, "heat_window": window},
            headers=device_auth,
        )
    )
    submitter = ok(
        http.post(
            "/v1/admin/keys", json={"name": f"carol{suffix}", "role": "submitter"}, headers=auth
        ),
        201,
    )
    ok(
        http.post(
            "/v1/jobs",
            json={"name": "train", "device_kinds": ["cpu"], "tasks": [{"energy_j": 3.6e6}]},
            headers={"Authorization": f"Bearer {submitter['api_key']}"},
        ),
        201,
    )
    [lease] = ok(
        http.post(f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=device_auth)
    )["leases"]
    return device_id, token, lease["task_id"], lease["attempt"]


class _DropAfter(httpx.AsyncBaseTransport):
    """Forwards to ``inner``; the connection drops at the ``drop_at``-th chunk PUT (from 1)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, drop_at: int) -> None:
        self.inner = inner
        self.drop_at = drop_at
        self.chunk_puts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/checkpoint-chunks/" in request.url.path:
            self.chunk_puts += 1
            if self.chunk_puts == self.drop_at:
                raise httpx.ReadError("connection reset by peer", request=request)
        return await self.inner.handle_async_request(request)


def _chunk_puts(app: FastAPI, status: str = "201") -> float:
    value = app.state.metrics.registry.get_sample_value(
        "heatgrid_http_request_duration_s_count",
        {"method": "PUT", "route": _CHUNK_ROUTE, "status": status},
    )
    return value or 0.0


def _client(app: FastAPI, device_id: str, token: str, drop_at: int = 0) -> CoordinatorClient:
    transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=app)
    if drop_at:
        transport = _DropAfter(transport, drop_at)
    return CoordinatorClient(
        "http://coordinator.test", transport=transport, token=token, device_id=device_id
    )


def test_an_interrupted_upload_resumes_with_the_chunks_that_are_missing(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    device_id, token, task_id, attempt = _leased_task(
        coordinator.client, coordinator.operator_key, coordinator.clock()
    )
    data = os.urandom(10 * CHUNK_BYTES + 100)  # eleven chunks, the last one short
    checkpoint = tmp_path / "state.ckpt"
    checkpoint.write_bytes(data)
    portal = coordinator.client.portal

    async def none_yet() -> bytes | None:
        async with _client(coordinator.app, device_id, token) as client:
            return await client.download_checkpoint(task_id)

    assert portal.call(none_yet) is None

    async def upload(drop_at: int) -> Any:
        async with _client(coordinator.app, device_id, token, drop_at) as client:
            return await client.upload_checkpoint(
                task_id, checkpoint, attempt=attempt, energy_j=1000.0, chunk_bytes=CHUNK_BYTES
            )

    with pytest.raises(CoordinatorUnavailableError, match="connection reset"):
        portal.call(upload, 5)  # four chunks arrive, then the connection drops
    assert _chunk_puts(coordinator.app) == 4
    receipt = portal.call(upload, 0)
    assert _chunk_puts(coordinator.app) == 11  # seven more: none sent twice
    assert receipt.seq == 1
    assert receipt.sha256 == hashlib.sha256(data).hexdigest()
    assert receipt.size_bytes == len(data)
    assert portal.call(none_yet) == data
    chunk_dir = tmp_path / "checkpoints" / task_id / "chunks"
    assert not chunk_dir.exists() or list(chunk_dir.iterdir()) == []  # joined, then removed

    same = portal.call(upload, 0)  # bytes given, not a file; the same checkpoint again
    assert same.seq == 1


def test_only_the_newest_checkpoints_keep_their_blobs(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    device_id, token, task_id, attempt = _leased_task(
        coordinator.client, coordinator.operator_key, coordinator.clock()
    )
    versions = [f"state {n}".encode() * 300 for n in range(1, 6)]

    async def upload_all() -> list[int]:
        async with _client(coordinator.app, device_id, token) as client:
            return [
                (
                    await client.upload_checkpoint(
                        task_id,
                        data,
                        attempt=attempt,
                        energy_j=100.0 * n,
                        chunk_bytes=CHUNK_BYTES,
                    )
                ).seq
                for n, data in enumerate(versions, start=1)
            ]

    assert coordinator.client.portal.call(upload_all) == [1, 2, 3, 4, 5]
    blobs = sorted(path.name for path in (tmp_path / "checkpoints" / task_id).glob("*.ckpt"))
    assert blobs == ["00000004.ckpt", "00000005.ckpt"]
    engine = make_engine(coordinator.database_url)
    with make_session_factory(engine)() as session:
        pruned = {
            row.seq: row.pruned_ts is not None
            for row in session.query(Checkpoint).filter(Checkpoint.task_id == task_id)
        }
    engine.dispose()
    assert pruned == {1: True, 2: True, 3: True, 4: False, 5: False}
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/v1/devices/{device_id}/tasks/{task_id}"
    gone = coordinator.client.get(f"{base}/checkpoints/2", headers=headers)
    assert gone.status_code == 410
    assert "pruned" in gone.json()["detail"]
    kept = coordinator.client.get(f"{base}/checkpoints/4", headers=headers)
    assert kept.content == versions[3]
    newest = coordinator.client.get(f"{base}/checkpoint", headers=headers)
    assert newest.content == versions[4]
    assert newest.headers["X-Checkpoint-Seq"] == "5"


def test_bad_chunks_and_commits_are_refused_and_record_nothing(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    device_id, token, task_id, attempt = _leased_task(
        coordinator.client, coordinator.operator_key, coordinator.clock()
    )
    http = coordinator.client
    auth = {"Authorization": f"Bearer {token}"}
    headers = {**auth, "Content-Type": "application/octet-stream"}
    base = f"/v1/devices/{device_id}/tasks/{task_id}"
    data = b"chunk of state"
    sha = hashlib.sha256(data).hexdigest()

    wrong = http.put(
        f"{base}/checkpoint-chunks/{sha}",
        params={"attempt": attempt},
        content=b"other bytes",
        headers=headers,
    )
    assert wrong.status_code == 422
    assert "nothing was stored" in wrong.json()["detail"]
    for name in ("..%2F..%2Fetc", "A" * 64, "a" * 63):
        tricky = http.put(
            f"{base}/checkpoint-chunks/{name}",
            params={"attempt": attempt},
            content=data,
            headers=headers,
        )
        assert tricky.status_code in (404, 422), (name, tricky.status_code)
    stale = http.put(
        f"{base}/checkpoint-chunks/{sha}",
        params={"attempt": attempt + 1},
        content=data,
        headers=headers,
    )
    assert stale.status_code == 404
    big = os.urandom(MAX_CHECKPOINT_BYTES + 1)
    too_big = http.put(
        f"{base}/checkpoint-chunks/{hashlib.sha256(big).hexdigest()}",
        params={"attempt": attempt},
        content=big,
        headers=headers,
    )
    assert too_big.status_code == 413

    commit = {
        "attempt": attempt,
        "energy_j": 10.0,
        "chunks": [sha],
        "sha256": sha,
        "size_bytes": len(data),
    }
    lacking = http.post(f"{base}/checkpoints", json=commit, headers=auth)
    assert lacking.status_code == 422
    assert "lacks 1 of them" in lacking.json()["detail"]
    stored = http.put(
        f"{base}/checkpoint-chunks/{sha}",
        params={"attempt": attempt},
        content=data,
        headers=headers,
    )
    assert stored.status_code == 201
    again = http.put(
        f"{base}/checkpoint-chunks/{sha}",
        params={"attempt": attempt},
        content=data,
        headers=headers,
    )
    assert again.status_code == 200
    lying = http.post(f"{base}/checkpoints", json={**commit, "sha256": "0" * 64}, headers=auth)
    assert lying.status_code == 422
    assert "nothing was recorded" in lying.json()["detail"]
    huge = http.post(
        f"{base}/checkpoints",
        json={**commit, "size_bytes": MAX_CHECKPOINT_BYTES + 1},
        headers=auth,
    )
    assert huge.status_code == 422
    assert http.get(f"{base}/checkpoint", headers=auth).status_code == 204

    other_id, other_token, _, _ = _leased_task(
        http, coordinator.operator_key, coordinator.clock(), "-2"
    )
    stranger = {"Authorization": f"Bearer {other_token}"}
    refused = http.post(
        f"/v1/devices/{other_id}/tasks/{task_id}/checkpoints", json=commit, headers=stranger
    )
    assert refused.status_code == 404
    assert (
        http.get(f"/v1/devices/{other_id}/tasks/{task_id}/checkpoint", headers=stranger).status_code
        == 404
    )
    assert http.post(f"{base}/checkpoints", json=commit, headers=auth).status_code == 200

    async def refused_download() -> None:
        async with _client(coordinator.app, other_id, other_token) as client:
            await client.download_checkpoint(task_id)

    with pytest.raises(CoordinatorRefusedError) as error:
        coordinator.client.portal.call(refused_download)
    assert error.value.status_code == 404


# --------------------------------------------------------------------------- S3 (moto)


def test_chunked_checkpoints_and_artifacts_in_s3(database_url: str, s3_env: str) -> None:
    bucket = s3_env
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        operator_key = create_api_key(
            session, name="operator", role="operator", scopes=None, now_ts=time.time()
        ).token
    engine.dispose()
    settings = Settings(
        database_url=database_url,
        checkpoint_url=f"s3://{bucket}/coordinator",
        checkpoint_keep=KEEP,
        rate_limit_per_s=1e9,
        rate_limit_burst=1_000_000,
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30.0) as http:
            device_id, token, task_id, attempt = _leased_task(http, operator_key, time.time())
        versions = [os.urandom(3 * CHUNK_BYTES + 7) for _ in range(3)]

        async def round_trip() -> tuple[list[int], bytes | None]:
            async with CoordinatorClient(url, token=token, device_id=device_id) as client:
                seqs = [
                    (
                        await client.upload_checkpoint(
                            task_id,
                            data,
                            attempt=attempt,
                            energy_j=10.0 * n,
                            chunk_bytes=CHUNK_BYTES,
                        )
                    ).seq
                    for n, data in enumerate(versions, start=1)
                ]
                return seqs, await client.download_checkpoint(task_id)

        seqs, newest = anyio.run(round_trip)
        assert seqs == [1, 2, 3]
        assert newest == versions[-1]
        filesystem = fsspec.filesystem("s3", skip_instance_cache=True)
        stored = sorted(
            path.rsplit("/", 1)[1] for path in filesystem.find(f"{bucket}/coordinator/{task_id}")
        )
        assert stored == ["00000002.ckpt", "00000003.ckpt"]  # pruned, and no chunk left
        assert filesystem.cat_file(f"{bucket}/coordinator/{task_id}/00000003.ckpt") == versions[-1]
    finally:
        server.should_exit = True
        thread.join(timeout=30.0)
        app.state.engine.dispose()


def test_a_checkpoints_step_and_fingerprint_are_checked_and_kept(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    device_id, token, task_id, attempt = _leased_task(
        coordinator.client, coordinator.operator_key, coordinator.clock()
    )
    data = os.urandom(3 * CHUNK_BYTES)
    weights = {"w": np.arange(100, dtype=np.float32)}
    mark = CheckpointMark.model_validate({"step": 300, "fingerprint": tensor_fingerprint(weights)})

    async def upload(blob: bytes, energy_j: float, with_mark: CheckpointMark | None) -> Any:
        async with _client(coordinator.app, device_id, token) as client:
            return await client.upload_checkpoint(
                task_id,
                blob,
                attempt=attempt,
                energy_j=energy_j,
                chunk_bytes=CHUNK_BYTES,
                mark=with_mark,
            )

    receipt = coordinator.client.portal.call(upload, data, 10.0, mark)
    plain = coordinator.client.portal.call(upload, data[::-1], 20.0, None)
    assert (receipt.seq, plain.seq) == (1, 2)
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = {row.seq: row for row in session.query(Checkpoint).filter_by(task_id=task_id)}
            assert rows[1].step == 300
            assert rows[1].fingerprint == tensor_fingerprint(weights)
            assert (rows[2].step, rows[2].fingerprint) == (None, None)
    finally:
        engine.dispose()

    sha = hashlib.sha256(data).hexdigest()
    commit = {
        "attempt": attempt,
        "energy_j": 30.0,
        "chunks": [sha],
        "sha256": sha,
        "size_bytes": len(data),
    }
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/v1/devices/{device_id}/tasks/{task_id}"
    bad_print = {**tensor_fingerprint(weights), "sketch": [1.0] * 3}
    for body, field in (
        ({**commit, "step": -1}, "step"),
        ({**commit, "fingerprint": bad_print}, "sketch"),
        ({**commit, "fingerprint": {**bad_print, "sketch": [0.0] * 64, "norm": -1}}, "norm"),
    ):
        answer = coordinator.client.post(f"{base}/checkpoints", json=body, headers=auth)
        assert answer.status_code == 422, answer.text
        assert field in answer.text
