"""The command line: migrations, keys and codes, devices, and serve's refusal of a bad schema."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from heatgrid.cli.main import main
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import head_revision
from heatgrid.coordinator.settings import Settings

pytestmark = pytest.mark.usefixtures("backend")


def _get(app, path: str) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)

    try:
        return anyio.run(fetch)
    finally:
        app.state.engine.dispose()


def test_serve_and_admin_refuse_an_unmigrated_database(empty_database_url: str, capsys) -> None:
    status = main(["serve", "--database-url", empty_database_url, "--port", "0"])
    assert status == 2
    assert "heatgrid db upgrade" in capsys.readouterr().err
    status = main(["devices", "list", "--database-url", empty_database_url])
    assert status == 2
    assert "no heatgrid schema" in capsys.readouterr().err


def test_readyz_fails_until_the_database_is_migrated(empty_database_url: str, capsys) -> None:
    before = _get(create_app(Settings(database_url=empty_database_url)), "/readyz")
    assert before.status_code == 503
    assert "heatgrid db upgrade" in before.json()["detail"]
    assert main(["db", "upgrade", "--database-url", empty_database_url]) == 0
    assert f"-> {head_revision()}" in capsys.readouterr().out
    after = _get(create_app(Settings(database_url=empty_database_url)), "/readyz")
    assert after.status_code == 200
    assert after.json() == {"status": "ready", "schema_revision": head_revision()}


def test_readyz_fails_when_the_database_is_unreachable(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'no such dir' / 'db.sqlite3'}"
    answer = _get(create_app(Settings(database_url=url)), "/readyz")
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("database unreachable")


def test_admin_commands_make_keys_codes_and_list_devices(database_url: str, capsys) -> None:
    def run(*args: str) -> str:
        status = main([*args, "--database-url", database_url])
        captured = capsys.readouterr()
        assert status == 0, captured.err
        return captured.out

    key = json.loads(run("admin", "create-key", "--role", "owner", "--name", "alice", "--json"))
    assert key["api_key"].startswith(f"hgk_{key['key_id']}_")
    assert key["scopes"] == ["devices:read", "devices:write", "enrollment:create", "ledger:read"]
    code = json.loads(run("admin", "enroll-code", "--owner", "alice", "--ttl-s", "60", "--json"))
    assert code["expires_ts"] == pytest.approx(code["created_ts"] + 60.0)
    assert json.loads(run("devices", "list", "--json")) == []
    assert "revoked" in run("admin", "revoke-key", key["key_id"])

    assert main(["admin", "enroll-code", "--owner", "nobody", "--database-url", database_url]) == 2
    assert "no account 'nobody'" in capsys.readouterr().err
    assert main(["devices", "show", "nope", "--database-url", database_url]) == 2
    assert "no device 'nope'" in capsys.readouterr().err
    bad_role = ["admin", "create-key", "--role", "king", "--name", "x"]
    assert main([*bad_role, "--database-url", database_url]) == 2
    assert "role:" in capsys.readouterr().err
