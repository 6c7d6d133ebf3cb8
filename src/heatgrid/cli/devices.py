"""``heatgrid devices``: list, show, release and revoke enrolled heaters (reads the database)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from heatgrid.cli._database import AsJson, DatabaseUrl, DataDir, now_ts, open_session, utc_text
from heatgrid.cli._tables import print_table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from heatgrid.coordinator.db.models import Device

__all__ = ["register"]

_devices = typer.Typer(help="Enrolled heaters (reads the database).", no_args_is_help=True)


def _record(session: Session, device: Device) -> dict[str, Any]:
    from heatgrid.coordinator.db.models import Account  # noqa: PLC0415 - keeps `--help` fast

    owner = session.get(Account, device.owner_id)
    return {
        "device_id": device.id,
        "owner_name": owner.name if owner is not None else None,
        "name": device.name,
        "kind": device.kind,
        "hardware": device.hardware,
        "has_room": device.has_room,
        "energy_price_eur_per_kwh": device.energy_price_eur_per_kwh,
        "enrolled_ts": device.enrolled_ts,
        "last_seen_ts": device.last_seen_ts,
        "revoked_ts": device.revoked_ts,
    }


def _all_devices(session: Session, limit: int | None) -> list[Device]:
    """Every device (or the first ``limit``), oldest first, read a page at a time."""
    from heatgrid.coordinator import devices as fleet  # noqa: PLC0415 - keeps `--help` fast
    from heatgrid.coordinator.pages import MAX_PAGE_LIMIT, PageRequest  # noqa: PLC0415

    found: list[Device] = []
    page = PageRequest(MAX_PAGE_LIMIT)
    while limit is None or len(found) < limit:
        devices, cursor = fleet.list_devices(session, None, page)
        found.extend(devices)
        if cursor is None:
            break
        page = PageRequest.from_query(MAX_PAGE_LIMIT, cursor, fleet.DEVICE_CURSOR_KINDS)
    return found[:limit]


DEFAULT_ONLINE_WINDOW_S = 180.0
"""A device heard from within this long counts as online [s] (as ``heatgrid serve``'s)."""

OnlineWindow = Annotated[
    float,
    typer.Option(
        "--online-window-s",
        min=1.0,
        help="A device whose last heartbeat is at most this old is online [s] "
        "(use the coordinator's heatgrid serve --online-window-s).",
    ),
]


@_devices.command("list")
def list_devices(
    *,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show at most this many (default: all).")
    ] = None,
    as_json: AsJson = False,
    online_window_s: OnlineWindow = DEFAULT_ONLINE_WINDOW_S,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """List every enrolled device, oldest first, and whether it is online."""
    from heatgrid.coordinator import devices as fleet  # noqa: PLC0415 - keeps `--help` fast

    now = now_ts()
    with open_session(database_url, data_dir) as session:
        records = [
            {
                **_record(session, device),
                "online": fleet.is_online(device, now_ts=now, online_window_s=online_window_s),
            }
            for device in _all_devices(session, limit)
        ]
    if as_json:
        typer.echo(json.dumps(records))
        return
    headers = ("device_id", "owner", "name", "kind", "max_power_w", "online", "last seen (UTC)")
    rows = [
        (
            record["device_id"],
            str(record["owner_name"]),
            record["name"],
            record["kind"],
            f"{record['hardware'].get('max_power_w', 0):g}",
            "revoked"
            if record["revoked_ts"] is not None
            else ("yes" if record["online"] else "no"),
            utc_text(record["last_seen_ts"]),
        )
        for record in records
    ]
    print_table(headers, rows, ids={"device_id"})


@_devices.command("show")
def show_device(
    *,
    device_id: Annotated[str, typer.Argument(help="The device's id.")],
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show one device, its quarantine, its agent's features, its newest sample and heat window.

    ``claim_unproven_reason`` says why a hardware challenge it owes is held back (its agent does
    not declare a feature the challenge needs): it gets no tasks until its agent is updated.
    """
    from heatgrid.coordinator import devices as fleet  # noqa: PLC0415 - keeps `--help` fast

    with open_session(database_url, data_dir) as session:
        device = fleet.get_device(session, device_id, None)
        record = _record(session, device)
        record["quarantined_ts"] = device.quarantined_ts
        record["quarantine_reason"] = device.quarantine_reason
        record["agent_features"] = device.agent_features
        record["claim_unproven_reason"] = device.claim_unproven_reason
        sample = fleet.latest_sample(session, device.id)
        record["latest_sample"] = (
            None
            if sample is None
            else {
                column: getattr(sample, column)
                for column in sample.__table__.columns.keys()  # noqa: SIM118 - a ColumnCollection
                if column != "device_id"
            }
        )
        record["heat_window"] = [
            {
                "start_ts": row.start_ts,
                "duration_s": row.duration_s,
                "heat_power_w": row.heat_power_w,
            }
            for row in fleet.heat_window(session, device.id)
        ]
    if as_json:
        typer.echo(json.dumps(record))
        return
    for key, value in record.items():
        shown = utc_text(value) if key.endswith("_ts") else value
        typer.echo(f"{key}: {shown}")


@_devices.command("release")
def release_device(
    *,
    device_id: Annotated[str, typer.Argument(help="The device's id.")],
    keep_clawbacks: Annotated[
        bool,
        typer.Option(
            "--keep-clawbacks",
            help="Keep what clawback took from its owner (a released cheat on probation); by "
            "default the release gives it back (the catch was wrong).",
        ),
    ] = False,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Lift a device's quarantine and give back what clawback took (docs/operations.md).

    As the API's ``POST /v1/devices/{id}/release``: it owes a new hardware challenge, and its
    clawbacks are reversed once each (a second release gives back nothing).
    """
    from heatgrid.coordinator import devices as fleet  # noqa: PLC0415 - keeps `--help` fast
    from heatgrid.coordinator import verification  # noqa: PLC0415
    from heatgrid.coordinator.ledger import MICRO_EUR_PER_EUR  # noqa: PLC0415

    with open_session(database_url, data_dir) as session:
        device = fleet.get_device(session, device_id, None)
        restored = verification.release(
            session, device, now_ts=now_ts(), keep_clawbacks=keep_clawbacks
        )
        session.commit()
    record = {
        "device_id": device_id,
        "clawbacks_reversed": restored.results,
        "owner_restored_eur": restored.owner_micro_eur / MICRO_EUR_PER_EUR,
        "fee_restored_eur": restored.fee_micro_eur / MICRO_EUR_PER_EUR,
        "from_submitters_eur": restored.from_submitters_micro_eur / MICRO_EUR_PER_EUR,
    }
    if as_json:
        typer.echo(json.dumps(record))
        return
    typer.echo(
        f"device {device_id} released; {restored.results} clawback(s) reversed: "
        f"{record['owner_restored_eur']:.6f} EUR back to its owner, "
        f"{record['fee_restored_eur']:.6f} EUR of fees to the platform, charged back to the "
        f"submitters ({record['from_submitters_eur']:.6f} EUR)"
    )


@_devices.command("revoke")
def revoke_device(
    *,
    device_id: Annotated[str, typer.Argument(help="The device's id.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke a device's token; its history stays."""
    from heatgrid.coordinator import devices as fleet  # noqa: PLC0415 - keeps `--help` fast

    with open_session(database_url, data_dir) as session:
        fleet.revoke_device(session, device_id, None, now_ts=now_ts())
    typer.echo(f"device {device_id} revoked")


def register(app: typer.Typer) -> None:
    """Add the ``devices`` command group to the ``heatgrid`` app."""
    app.add_typer(_devices, name="devices")
