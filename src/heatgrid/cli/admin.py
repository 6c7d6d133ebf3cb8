"""``heatgrid admin``: API keys and enrollment codes, written straight into the database.

These commands are for the operator on the coordinator's host: they open the database (the same
``--database-url`` as ``heatgrid serve``) and call the same services as the HTTP API. That is
how the first operator key is made; everything after it can also go through the API.
"""

from __future__ import annotations

from typing import Annotated

import typer

from heatgrid.cli._database import AsJson, DatabaseUrl, DataDir, now_ts, open_session

__all__ = ["register"]

_admin = typer.Typer(
    help="API keys and enrollment codes (reads the database).", no_args_is_help=True
)


@_admin.command("create-key")
def create_key(
    *,
    role: Annotated[str, typer.Option(help="operator, owner or submitter.")],
    name: Annotated[str, typer.Option(help="Account name; the account is created if new.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="A scope of the key (repeat); default: all of the role's."),
    ] = None,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it; this is the only time the secret is shown."""
    from heatgrid.coordinator import accounts  # noqa: PLC0415 - keeps `--help` fast
    from heatgrid.coordinator.api.schemas import CreatedKey  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        issued = accounts.create_api_key(
            session, name=name, role=role, scopes=scope or None, now_ts=now_ts()
        )
    created = CreatedKey(
        key_id=issued.key.id,
        account_name=issued.account.name,
        role=issued.account.role,
        scopes=list(issued.key.scopes),
        created_ts=issued.key.created_ts,
        api_key=issued.token,
    )
    if as_json:
        typer.echo(created.model_dump_json())
        return
    typer.echo(
        f"API key {created.key_id} for {created.role} {created.account_name!r} "
        f"(scopes: {', '.join(created.scopes) or 'none'}):"
    )
    typer.echo(created.api_key)
    typer.echo("Store it now: only its hash is kept, it cannot be shown again.", err=True)


@_admin.command("revoke-key")
def revoke_key(
    *,
    key_id: Annotated[str, typer.Argument(help="The key id (the part after hgk_).")],
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key; requests with it are refused from then on."""
    from heatgrid.coordinator import accounts  # noqa: PLC0415 - keeps `--help` fast
    from heatgrid.coordinator.api.schemas import KeyInfo  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        key = accounts.revoke_api_key(session, key_id, actor=None, now_ts=now_ts())
    info = KeyInfo(
        key_id=key.id, scopes=list(key.scopes), created_ts=key.created_ts, revoked_ts=key.revoked_ts
    )
    typer.echo(info.model_dump_json() if as_json else f"API key {key.id} revoked")


@_admin.command("enroll-code")
def enroll_code(
    *,
    owner: Annotated[str, typer.Option(help="Account name of the heater's owner.")],
    ttl_s: Annotated[
        float, typer.Option("--ttl-s", help="How long the code stays valid [s].")
    ] = 3600.0,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Create a one-time enrollment code for a heater of OWNER and print it."""
    from heatgrid.coordinator import accounts  # noqa: PLC0415 - keeps `--help` fast
    from heatgrid.coordinator.api.schemas import CreatedEnrollmentCode  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        issued = accounts.create_enrollment_code(
            session, owner_name=owner, ttl_s=ttl_s, actor=None, now_ts=now_ts()
        )
    created = CreatedEnrollmentCode(
        code_id=issued.code.id,
        owner_name=issued.owner.name,
        created_ts=issued.code.created_ts,
        expires_ts=issued.code.expires_ts,
        enrollment_code=issued.token,
    )
    if as_json:
        typer.echo(created.model_dump_json())
        return
    typer.echo(f"Enrollment code for {created.owner_name!r}, valid for {ttl_s:g} s, once:")
    typer.echo(created.enrollment_code)


def register(app: typer.Typer) -> None:
    """Add the ``admin`` command group to the ``heatgrid`` app."""
    app.add_typer(_admin, name="admin")
