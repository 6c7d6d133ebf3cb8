"""Job artifacts in the coordinator, on SQLite and PostgreSQL: stored once by content, checked
while they stream in, and readable only by their uploaders and the devices leased their tasks.

The artifact is a real packed job (``examples/sweep`` through ``pack_job``); the agent's
``CoordinatorClient.fetch_artifact`` downloads it and checks its hash, and refuses a blob that
was tampered with in the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from heatgrid.agent.client import (
    ArtifactMismatchError,
    CoordinatorClient,
    CoordinatorRefusedError,
)
from heatgrid.jobs.artifact import pack_job, unpack_artifact
from heatgrid.protocol.jobs import ArtifactRef

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MAX_ARTIFACT_BYTES = 64 * 1024
WEEK_S = 7 * 86_400.0
DATA_URL = "https://example.org/train.csv#sha256=" + "ab" * 32


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """No rate limit; artifacts of at most 64 KiB."""
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 1_000_000,
        "anonymous_rate_limit_per_s": 1e9,
        "anonymous_rate_limit_burst": 1_000_000,
        "max_artifact_bytes": MAX_ARTIFACT_BYTES,
    }


@pytest.fixture
def artifact(tmp_path: Path) -> tuple[ArtifactRef, bytes]:
    """The sweep example, packed: its reference and its bytes."""
    ref = pack_job(EXAMPLES / "sweep", tmp_path / "packed")
    return ref, (tmp_path / "packed" / f"{ref.sha256}.tar.gz").read_bytes()


def _blobs(root: Path) -> list[Path]:
    """Every file in the store's artifacts and staging directories."""
    return sorted(
        path
        for folder in (root / "artifacts", root / ".staging")
        if folder.exists()
        for path in folder.rglob("*")
        if path.is_file()
    )


def _put(coordinator: Coordinator, key: str, sha256: str, data: bytes) -> httpx.Response:
    return coordinator.client.put(
        f"/v1/artifacts/{sha256}",
        content=data,
        headers={**coordinator.auth(key), "Content-Type": "application/octet-stream"},
    )


def _enroll_cpu(coordinator: Coordinator, name: str) -> tuple[str, dict[str, str]]:
    owner = coordinator.owner_key(f"owner-{name}")
    body = coordinator.enroll_body(coordinator.enrollment_code(owner), name)
    body.update(device_kind="cpu", hardware={"max_power_w": 200.0}, has_room=True)
    answer = coordinator.client.post("/v1/devices/enroll", json=body)
    assert answer.status_code == 201, answer.text
    device_id, headers = answer.json()["device_id"], coordinator.auth(answer.json()["device_token"])
    now_ts = coordinator.clock()
    beat = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat",
        json={
            "sent_ts": now_ts,
            "heat_window": [{"start_ts": now_ts, "duration_s": WEEK_S, "heat_power_w": 200.0}],
        },
        headers=headers,
    )
    assert beat.status_code == 200, beat.text
    return device_id, headers


def _submit(coordinator: Coordinator, key: str, ref: ArtifactRef | None, **fields: Any) -> Any:
    body: dict[str, Any] = {
        "name": "sweep",
        "device_kinds": ["cpu"],
        "tasks": [{"task_input": {"seed": n}, "energy_j": 3600.0} for n in range(2)],
        **fields,
    }
    if ref is not None:
        body["artifact"] = ref.model_dump()
    return coordinator.client.post("/v1/jobs", json=body, headers=coordinator.auth(key))


def test_an_artifact_is_stored_once_and_a_second_upload_writes_nothing(
    coordinator: Coordinator, artifact: tuple[ArtifactRef, bytes], tmp_path: Path
) -> None:
    ref, data = artifact
    carol = coordinator.submitter_key("carol")
    first = _put(coordinator, carol, ref.sha256, data)
    assert first.status_code == 201, first.text
    assert first.json() == {"sha256": ref.sha256, "size_bytes": ref.size_bytes}
    [blob] = _blobs(tmp_path / "checkpoints")
    assert blob.read_bytes() == data
    written = blob.stat()

    again = _put(coordinator, carol, ref.sha256, data)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    dave = coordinator.submitter_key("dave")  # another submitter with the same bytes:
    assert _put(coordinator, dave, ref.sha256, data).status_code == 201  # not told carol has it
    assert _put(coordinator, dave, ref.sha256, data).status_code == 200
    [same] = _blobs(tmp_path / "checkpoints")
    assert (same.stat().st_ino, same.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)

    for key in (carol, dave):
        head = coordinator.client.request(
            "HEAD", f"/v1/artifacts/{ref.sha256}", headers=coordinator.auth(key)
        )
        assert head.status_code == 200
        assert head.headers["X-Artifact-Size-Bytes"] == str(ref.size_bytes)
        got = coordinator.client.get(f"/v1/artifacts/{ref.sha256}", headers=coordinator.auth(key))
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["X-Artifact-Sha256"] == ref.sha256


def test_a_body_whose_hash_differs_is_refused_and_leaves_nothing(
    coordinator: Coordinator, artifact: tuple[ArtifactRef, bytes], tmp_path: Path
) -> None:
    ref, data = artifact
    carol = coordinator.submitter_key()
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    answer = _put(coordinator, carol, ref.sha256, tampered)
    assert answer.status_code == 422
    assert hashlib.sha256(tampered).hexdigest() in answer.json()["detail"]
    assert "nothing was stored" in answer.json()["detail"]
    assert _blobs(tmp_path / "checkpoints") == []
    head = coordinator.client.request(
        "HEAD", f"/v1/artifacts/{ref.sha256}", headers=coordinator.auth(carol)
    )
    assert head.status_code == 404
    # Stored already: a wrong body is refused all the same, and makes nobody an owner.
    assert _put(coordinator, carol, ref.sha256, data).status_code == 201
    dave = coordinator.submitter_key("dave")
    assert _put(coordinator, dave, ref.sha256, tampered).status_code == 422
    got = coordinator.client.get(f"/v1/artifacts/{ref.sha256}", headers=coordinator.auth(dave))
    assert got.status_code == 404
    empty = _put(coordinator, carol, hashlib.sha256(b"").hexdigest(), b"")
    assert empty.status_code == 422
    assert "empty" in empty.json()["detail"]


def test_an_artifact_over_the_size_limit_is_refused_with_413(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    carol = coordinator.submitter_key()
    data = b"\x00" * (MAX_ARTIFACT_BYTES + 1)
    sha256 = hashlib.sha256(data).hexdigest()
    declared = _put(coordinator, carol, sha256, data)
    assert declared.status_code == 413
    assert str(MAX_ARTIFACT_BYTES) in declared.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    streamed = coordinator.client.put(
        f"/v1/artifacts/{sha256}",
        content=chunks(),
        headers={**coordinator.auth(carol), "Content-Type": "application/octet-stream"},
    )
    assert streamed.status_code == 413
    assert _blobs(tmp_path / "checkpoints") == []
    fits = data[:MAX_ARTIFACT_BYTES]
    assert _put(coordinator, carol, hashlib.sha256(fits).hexdigest(), fits).status_code == 201


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "..",
        "%2e%2e",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "a" * 62 + "/.",
        "a" * 64 + "%00",
        "g" * 64,
    ],
)
def test_a_name_that_is_not_a_sha256_is_refused(
    coordinator: Coordinator, tmp_path: Path, name: str
) -> None:
    carol = coordinator.submitter_key()
    for method in ("PUT", "GET", "HEAD"):
        answer = coordinator.client.request(
            method,
            f"/v1/artifacts/{name}",
            content=b"x" if method == "PUT" else None,
            headers=coordinator.auth(carol),
        )
        assert 400 <= answer.status_code < 500, (method, answer.status_code)
        assert answer.status_code in (404, 405, 422), (method, answer.status_code)
    assert _blobs(tmp_path / "checkpoints") == []
    assert not (tmp_path / "etc").exists()


def test_only_uploaders_and_leased_devices_read_an_artifact(
    coordinator: Coordinator, artifact: tuple[ArtifactRef, bytes]
) -> None:
    ref, data = artifact
    url = f"/v1/artifacts/{ref.sha256}"
    carol, dave = coordinator.submitter_key("carol"), coordinator.submitter_key("dave")
    owner = coordinator.owner_key("olivia")
    assert coordinator.client.put(url, content=data).status_code == 401
    refused = _put(coordinator, owner, ref.sha256, data)
    assert refused.status_code == 403, refused.text
    assert _put(coordinator, carol, ref.sha256, data).status_code == 201

    assert coordinator.client.get(url).status_code == 401
    assert coordinator.client.get(url, headers=coordinator.auth(dave)).status_code == 404
    assert coordinator.client.get(url, headers=coordinator.auth(owner)).status_code == 403
    # dave cannot run carol's artifact by naming its hash
    named = _submit(coordinator, dave, ref)
    assert named.status_code == 422
    assert "not uploaded by this account" in named.json()["detail"]
    wrong_size = _submit(coordinator, carol, ref.model_copy(update={"size_bytes": 7}))
    assert wrong_size.status_code == 422
    assert "size_bytes" in wrong_size.json()["detail"]

    device_id, device = _enroll_cpu(coordinator, "kitchen")
    other_id, other = _enroll_cpu(coordinator, "attic")
    assert coordinator.client.get(url, headers=device).status_code == 404  # no lease yet
    refused = _submit(coordinator, carol, ref, input_urls={"data": "s3://bucket/train.csv"})
    assert refused.status_code == 422, refused.text
    assert "input_urls.data: s3://bucket/train.csv is not fetched by heaters" in refused.text
    unhashed = _submit(coordinator, carol, ref, input_urls={"data": "https://example.org/d"})
    assert unhashed.status_code == 422, unhashed.text
    assert "names no content hash; end the URL with #sha256=" in unhashed.text
    job = _submit(coordinator, carol, ref, input_urls={"data": DATA_URL})
    assert job.status_code == 201, job.text
    assert job.json()["artifact_sha256"] == ref.sha256
    claimed = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=device
    )
    [lease] = claimed.json()["leases"]
    assert lease["artifact"] == {"sha256": ref.sha256, "size_bytes": ref.size_bytes}
    assert lease["task_input"] == {"seed": lease["task_index"]}
    assert lease["input_urls"] == {"data": DATA_URL}
    got = coordinator.client.get(url, headers=device)
    assert got.status_code == 200
    assert got.content == data
    assert coordinator.client.request("HEAD", url, headers=device).status_code == 200
    assert coordinator.client.get(url, headers=other).status_code == 404  # no lease of its own

    done = coordinator.client.post(
        f"/v1/devices/{device_id}/tasks/{lease['task_id']}/complete",
        json={"attempt": lease["attempt"], "energy_j": 1000.0, "result": {"hits": 1}},
        headers=device,
    )
    assert done.status_code == 200, done.text
    assert coordinator.client.get(url, headers=device).status_code == 404  # lease over
    assert other_id != device_id


def test_the_agent_client_fetches_checks_and_refuses_a_tampered_artifact(
    coordinator: Coordinator, artifact: tuple[ArtifactRef, bytes], tmp_path: Path
) -> None:
    ref, data = artifact
    carol = coordinator.submitter_key()
    assert _put(coordinator, carol, ref.sha256, data).status_code == 201
    device_id, device = _enroll_cpu(coordinator, "kitchen")
    assert _submit(coordinator, carol, ref).status_code == 201
    claimed = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=device
    )
    assert len(claimed.json()["leases"]) == 1
    token = device["Authorization"].removeprefix("Bearer ")
    dest = tmp_path / "agent-artifacts"

    async def fetch(sha256: str, **kwargs: Any) -> Path:
        async with CoordinatorClient(
            "http://coordinator.test",
            transport=httpx.ASGITransport(app=coordinator.app),
            token=token,
        ) as client:
            return await client.fetch_artifact(sha256, dest, **kwargs)

    path = coordinator.client.portal.call(fetch, ref.sha256)
    assert path == dest / f"{ref.sha256}.tar.gz"
    assert path.read_bytes() == data
    unpack_artifact(path, ref.sha256, tmp_path / "job")
    assert (tmp_path / "job" / "code" / "job.py").is_file()

    missing = "0" * 64
    with pytest.raises(CoordinatorRefusedError, match="404") as refused:
        coordinator.client.portal.call(fetch, missing)
    assert refused.value.status_code == 404

    path.unlink()
    [blob] = _blobs(tmp_path / "checkpoints")
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # tampered with in the store
    with pytest.raises(ArtifactMismatchError, match="tampered") as mismatch:
        coordinator.client.portal.call(fetch, ref.sha256)
    assert mismatch.value.expected_sha256 == ref.sha256
    assert list(dest.iterdir()) == []  # nothing kept, not even a partial file
    with pytest.raises(ArtifactMismatchError, match="more than 100 bytes"):
        coordinator.client.portal.call(lambda: fetch(ref.sha256, max_bytes=100))
    assert list(dest.iterdir()) == []
