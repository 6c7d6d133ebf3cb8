"""``heatgrid demo``: a live fleet of emulated homes heated by miners and CPU heaters, on defaults.

A coordinator on SQLite in a temporary directory with its Stratum proxy, its own mosquitto,
emulated homes whose miners mine through the proxy into a Stratum test pool and whose CPU
heaters run the example job in the sandbox, one real agent per heater enrolled with a one-time
code, all on an accelerated shared clock that starts on a fixed winter morning whatever today's
date (:func:`heatgrid.cli._demo_world.demo_clock`); a live view with the dashboard's URL and
login key, a summary that states each acceptance item at the end, and every process it started
stopped by its PID, Ctrl-C included (:mod:`heatgrid.cli._demo_fleet`). ``--walkthrough`` runs the
enrollment flow step by step instead (:mod:`heatgrid.cli._demo_walkthrough`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from heatgrid.core.errors import InputError

__all__ = ["register"]

_MAX_HOMES = 8


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check(duration_s: float, homes: int, speed: float) -> None:
    if not (math.isfinite(duration_s) and duration_s >= 10.0):
        raise InputError(f"--duration must be at least 10 seconds, got {duration_s}")
    if not 1 <= homes <= _MAX_HOMES:
        raise InputError(f"--homes must be between 1 and {_MAX_HOMES}, got {homes}")
    if not (math.isfinite(speed) and 1.0 <= speed <= 600.0):
        raise InputError(f"--speed must be between 1 and 600, got {speed}")


def demo(
    *,
    duration: Annotated[
        float, typer.Option("--duration", help="How long the fleet runs, wall time [s].")
    ] = 120.0,
    homes: Annotated[
        int,
        typer.Option(
            "--homes",
            "--heaters",
            help="Emulated homes (the first two also have a CPU heater that runs jobs).",
        ),
    ] = 3,
    speed: Annotated[
        float, typer.Option(help="Emulated seconds per real second of the shared clock.")
    ] = 60.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (the live view on stderr).")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary directory.")] = False,
    walkthrough: Annotated[
        bool,
        typer.Option(
            "--walkthrough", help="Walk through enrolling one heater instead, step by step."
        ),
    ] = False,
) -> None:
    """Run a live fleet of homes heated by miners and CPU heaters, then summarize (no setup)."""
    if walkthrough:
        from heatgrid.cli._demo_walkthrough import walkthrough as run_walkthrough  # noqa: PLC0415

        run_walkthrough(keep=keep)
        return
    _check(duration, homes, speed)
    from heatgrid.cli._demo_processes import mosquitto_binary  # noqa: PLC0415

    if mosquitto_binary() is None:
        Console(stderr=True).print(
            "[bold yellow]The live fleet needs mosquitto[/] (the MQTT broker the emulated "
            "rooms' temperature sensors publish on), and it is not installed: `apt install "
            "mosquitto` (Debian, Ubuntu) or `brew install mosquitto`, then run `heatgrid demo` "
            "again. Meanwhile, the coordinator's enrollment flow (heatgrid demo --walkthrough):"
        )
        from heatgrid.cli._demo_walkthrough import walkthrough as run_walkthrough  # noqa: PLC0415

        run_walkthrough(keep=keep)
        return
    _run_live(duration, homes, speed, as_json=as_json, keep=keep)


def _run_live(duration_s: float, homes: int, speed: float, *, as_json: bool, keep: bool) -> None:
    from rich.live import Live  # noqa: PLC0415

    from heatgrid.cli._demo_fleet import FleetOptions, FleetRun, run_fleet  # noqa: PLC0415
    from heatgrid.cli._demo_summary import summary  # noqa: PLC0415
    from heatgrid.cli._demo_view import live_view, summary_renderable  # noqa: PLC0415
    from heatgrid.cli._demo_world import demo_clock  # noqa: PLC0415

    # Ctrl-C stops everything, however the demo was started: a shell that starts a command in
    # the background (`&`) passes SIGINT on ignored, and asyncio then leaves it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console = Console(stderr=as_json)
    workdir = Path(tempfile.mkdtemp(prefix="heatgrid-demo-"))
    clock = demo_clock(time.time(), speed)
    options = FleetOptions(duration_s=duration_s, homes=homes, speed=speed, workdir=workdir)
    run = FleetRun(options, clock)
    interrupted, error = False, None
    shown: set[str] = set()
    with Live(live_view(run), console=console, refresh_per_second=2, transient=False) as live:

        def refresh() -> None:
            if run.url is not None and run.login_key is not None and "url" not in shown:
                shown.add("url")
                live.console.print(
                    f"Dashboard: [bold]{run.url}[/]  log in with the operator key "
                    f"[bold]{run.login_key}[/]",
                    soft_wrap=True,
                )
            if run.running_since_ts is not None and "running" not in shown:
                shown.add("running")
                live.console.print(
                    f"Fleet running: {len(run.world.homes) if run.world else 0} homes, "
                    f"{len(run.heaters)} heaters, each with its agent enrolled "
                    f"({', '.join(run.device_ids)}); miners mine through the Stratum proxy "
                    f"{run.proxy_url}; Ctrl-C stops everything.",
                    soft_wrap=True,
                )
            live.update(live_view(run))

        try:
            asyncio.run(run_fleet(run, refresh))
        except KeyboardInterrupt:
            interrupted = True
        except Exception as failure:  # said in one line below; every process still stops
            error = failure
        finally:
            if run.children is not None:
                run.children.kill_remaining()
    console.print()
    leftover = [pid for pid in ([] if run.children is None else run.children.pids()) if _alive(pid)]
    data = summary(run, interrupted=interrupted, leftover_pids=leftover)
    if keep:
        console.print(f"Files kept in {workdir}.")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if error is not None:
        Console(stderr=True).print(f"[bold red]demo failed:[/] {error}", highlight=False)
    if as_json:
        typer.echo(json.dumps(data))
    else:
        console.print(summary_renderable(data))
    if error is not None:
        raise typer.Exit(1)
    if interrupted:
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    """Add ``heatgrid demo`` to ``app``."""
    app.command("demo")(demo)
