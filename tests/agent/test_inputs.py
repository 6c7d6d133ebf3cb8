"""Inputs by URL: fetched by the heater from a real HTTP server on loopback, checked by hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.agent.jobs_fleet import Coordinator, agent, pack, until

from heatgrid.agent.inputs import InputFetchError, fetch_inputs, parse_input_url
from heatgrid.cli.main import main

DATA = b"x,y\n1,2\n3,4\n" * 1000
DATA_SHA256 = hashlib.sha256(DATA).hexdigest()


class _Server(ThreadingHTTPServer):
    requests: list[str]
    hosts: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        self.server.hosts.append(self.headers.get("Host", ""))
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/data.csv")
            self.end_headers()
            return
        if self.path != "/data.csv":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(DATA)))
        self.end_headers()
        self.wfile.write(DATA)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.hosts = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _url(server: _Server, path: str, sha256: str = DATA_SHA256, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.server_address[1]}{path}#sha256={sha256}"


def _fetch(urls: dict[str, str], cache: Path, **kwargs: object) -> dict[str, Path]:
    options: dict[str, object] = {"max_bytes": 1 << 20, "allow_private": True} | kwargs
    return asyncio.run(fetch_inputs(urls, cache, **options))  # type: ignore[arg-type]


def test_an_input_is_fetched_checked_and_kept_by_its_hash(server: _Server, tmp_path: Path) -> None:
    moved = _url(server, "/moved", host="localhost")  # a name, resolved and checked
    fetched = _fetch({"train": moved}, tmp_path)  # a redirect is followed
    assert fetched["train"].read_bytes() == DATA
    assert fetched["train"].name == DATA_SHA256
    assert server.requests == ["/moved", "/data.csv"]
    assert server.hosts == [f"localhost:{server.server_address[1]}"] * 2, "the Host it names"
    again = _fetch({"other": _url(server, "/data.csv")}, tmp_path)
    assert again["other"] == fetched["train"]
    assert len(server.requests) == 2, "kept by its hash: not fetched again"
    assert sorted(path.name for path in tmp_path.iterdir()) == [DATA_SHA256]


@pytest.mark.parametrize(
    ("path", "sha256", "max_bytes", "message"),
    [
        ("/data.csv", "0" * 64, 1 << 20, "have SHA-256 .* not 0{64} as the URL names"),
        ("/data.csv", DATA_SHA256, 1000, "is 12000 bytes, over the limit of 1000"),
        ("/missing.csv", DATA_SHA256, 1 << 20, "answered 404"),
    ],
)
def test_a_bad_input_is_refused_and_nothing_is_kept(
    server: _Server, tmp_path: Path, path: str, sha256: str, *, max_bytes: int, message: str
) -> None:
    with pytest.raises(InputFetchError, match=f"input 'train': .*{message}"):
        _fetch({"train": _url(server, path, sha256)}, tmp_path, max_bytes=max_bytes)
    assert list(tmp_path.iterdir()) == []


def test_the_home_network_is_not_reachable_through_an_input(
    server: _Server, tmp_path: Path
) -> None:
    with pytest.raises(InputFetchError, match=r"127\.0\.0\.1, which is not a public address"):
        _fetch({"router": _url(server, "/data.csv")}, tmp_path, allow_private=False)
    named = _url(server, "/data.csv", host="localhost")
    with pytest.raises(InputFetchError, match=r"localhost resolves to .*not a public address"):
        _fetch({"router": named}, tmp_path, allow_private=False)
    assert server.requests == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket/train.csv", "only http:// and https:// URLs"),
        ("https://example.org/train.csv", "names no content hash; end the URL with #sha256="),
        ("https://example.org/train.csv#sha256=ABC", "names no content hash"),
    ],
)
def test_urls_heaters_do_not_fetch_are_named(url: str, message: str) -> None:
    with pytest.raises(InputFetchError, match=f"input 'train': .*{message}"):
        parse_input_url("train", url)


INPUT_JOB = """
import hashlib

def main(ctx):
    return {"sha256": hashlib.sha256(ctx.inputs["train"].read_bytes()).hexdigest()}
"""


@pytest.mark.slow
@pytest.mark.usefixtures("sandbox_ready")
def test_a_heater_fetches_a_jobs_url_input_and_refuses_a_tampered_one(
    server: _Server, tmp_path: Path
) -> None:
    async def scenario(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        job_dir = root / "reader"
        job_dir.mkdir()
        (job_dir / "job.py").write_text(INPUT_JOB)
        artifact = pack(job_dir, root / "artifacts")
        async with Coordinator(root) as coordinator:
            (good,) = await coordinator.submit(
                artifact, [{}], input_urls={"train": _url(server, "/data.csv")}
            )
            (bad,) = await coordinator.submit(
                artifact,
                [{}],
                max_attempts=1,
                input_urls={"train": _url(server, "/data.csv", "1" * 64)},
            )
            async with agent(coordinator, root, "a", allow_private_inputs=True) as heater:
                await until(lambda: len(heater.workload.finished) == 2, "both tasks ended")
            return coordinator.task(good), coordinator.task(bad)

    good, bad = asyncio.run(asyncio.wait_for(scenario(tmp_path), 300.0))
    assert good["state"] == "completed", good
    assert json.loads(good["result"]) == {"sha256": DATA_SHA256}
    assert bad["state"] == "dead", bad
    assert "input 'train': the bytes of" in bad["last_error"], bad
    assert f"not {'1' * 64} as the URL names" in bad["last_error"], bad


@pytest.mark.usefixtures("sandbox_ready")
def test_run_local_fetches_the_url_inputs_of_job_toml(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_dir = tmp_path / "reader"
    job_dir.mkdir()
    (job_dir / "job.py").write_text(INPUT_JOB)
    state = ("--state-dir", str(tmp_path / "state"))
    toml = '[inputs]\ntrain = "{}"\n'
    (job_dir / "job.toml").write_text(toml.format(_url(server, "/data.csv")))
    assert main(["jobs", "run-local", str(job_dir), "--json", *state]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == {"sha256": DATA_SHA256}
    (job_dir / "job.toml").write_text(toml.format(_url(server, "/data.csv", "2" * 64)))
    assert main(["jobs", "run-local", str(job_dir), *state]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "input 'train': the bytes of" in err
    assert "as the URL names" in err


@pytest.mark.usefixtures("sandbox_ready")
def test_run_local_packs_an_input_of_another_store_and_the_task_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_dir = tmp_path / "reader"
    job_dir.mkdir()
    (job_dir / "job.py").write_text(INPUT_JOB)
    data = tmp_path / "elsewhere" / "data.csv"
    data.parent.mkdir()
    data.write_bytes(DATA)
    (job_dir / "job.toml").write_text(f'[inputs]\ntrain = "{data.as_uri()}"\n')
    state = ("--state-dir", str(tmp_path / "state"))
    assert main(["jobs", "run-local", str(job_dir), "--json", *state]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == {"sha256": DATA_SHA256}
    # --input replaces it, as on submit; a store that cannot be read is named
    gone = ("--input", f"train={(tmp_path / 'gone.csv').as_uri()}")
    assert main(["jobs", "run-local", str(job_dir), *gone, *state]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "input 'train': cannot read file://" in err
    assert "FileNotFoundError" in err
