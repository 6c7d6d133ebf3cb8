"""``heatgrid jobs``: submit, list, show and cancel jobs on a coordinator, over its HTTP API.

A job submitter runs these from anywhere with an API key (role ``submitter``); an operator key
sees every job. The coordinator validates each request; what it refuses is printed with the
field it names, and the command exits with status 2.
"""

from __future__ import annotations

import enum
import json
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from heatgrid.cli._database import AsJson, utc_text
from heatgrid.cli._jobs_report import plot_report, print_report
from heatgrid.cli._run_local import run_local
from heatgrid.cli._submit_dir import MAX_TASKS, DirectorySubmission
from heatgrid.cli._tables import print_table
from heatgrid.core.errors import InputError
from heatgrid.core.leasing import TaskState
from heatgrid.jobs.examples import copy_example, example_names

if TYPE_CHECKING:
    import httpx

__all__ = ["register"]

_jobs = typer.Typer(help="Jobs on a coordinator (over its HTTP API).", no_args_is_help=True)

Url = Annotated[
    str,
    typer.Option(
        "--url", envvar="HEATGRID_URL", help="The coordinator's base URL (https:// in production)."
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="HEATGRID_API_KEY",
        help="Your API key (from heatgrid admin create-key).",
    ),
]
_DEFAULT_URL = "http://127.0.0.1:8000"


class _Alternative(enum.StrEnum):
    """Heating a job report compares with (a heat pump needs the weather: not offered)."""

    GAS = "gas"
    RESISTIVE = "resistive"


_TIMEOUT_S = 30.0
_PAGE_LIMIT = 1000  # the coordinator's largest page
_SUBMIT_ATTEMPTS = 5
_RETRY_BASE_S = 0.5


def _detail(answer: httpx.Response) -> str:
    """Return the coordinator's reason: its ``detail`` (naming the field at fault), or text."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text.strip() or answer.reason_phrase
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


def _send(
    method: str,
    url: str,
    api_key: str | None,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    attempts: int = 1,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request and return the answer, unless the coordinator failed or was unreachable.

    Up to ``attempts`` times while the coordinator cannot be reached or the connection drops
    before the answer (safe only for requests that may be repeated: reads, uploads by content,
    and submissions with an ``Idempotency-Key``), waiting 0.5 s, 1 s, 2 s… in between. A 5xx
    answer or no connection ends the command with status 1.
    """
    if not api_key:
        raise InputError("--api-key (or HEATGRID_API_KEY) is required")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--url must start with http:// or https://, got {url!r}")
    sent = {"Authorization": f"Bearer {api_key}", **(headers or {})}
    import httpx  # noqa: PLC0415 - keeps `heatgrid --help` fast

    for attempt in range(attempts):
        try:
            with httpx.Client(base_url=url, timeout=_TIMEOUT_S) as client:
                answer = client.request(method, path, headers=sent, **kwargs)
            break
        except httpx.HTTPError as error:
            if isinstance(error, httpx.TransportError) and attempt + 1 < attempts:
                time.sleep(_RETRY_BASE_S * 2**attempt)
                continue
            Console(stderr=True).print(
                f"[bold red]error:[/] cannot reach the coordinator at {url}: {error}",
                highlight=False,
            )
            raise typer.Exit(1) from error
    if answer.status_code >= 500:
        Console(stderr=True).print(
            f"[bold red]error:[/] the coordinator failed ({answer.status_code}): {_detail(answer)}",
            highlight=False,
        )
        raise typer.Exit(1)
    return answer


def _call(method: str, url: str, api_key: str | None, path: str, **kwargs: Any) -> Any:
    """Send a request (see :func:`_send`); return its JSON, or raise InputError with the reason."""
    answer = _send(method, url, api_key, path, **kwargs)
    if answer.status_code >= 400:
        raise InputError(f"the coordinator refused ({answer.status_code}): {_detail(answer)}")
    return answer.json()


def _done(job: dict[str, Any]) -> str:
    by_state = job["tasks_by_state"]
    done = sum(by_state.get(state.value, 0) for state in (TaskState.COMPLETED, TaskState.VERIFIED))
    return f"{done}/{job['task_count']}"


@_jobs.command("submit")
def submit(
    spec: Annotated[
        str,
        typer.Argument(
            help="A job directory (job.py, job.toml) to pack and upload, or a JSON file "
            "describing the job's tasks (see docs/jobs.md), or '-' for JSON on stdin."
        ),
    ],
    *,
    tasks: Annotated[
        int | None,
        typer.Option(
            "--tasks",
            min=1,
            max=MAX_TASKS,
            help="DIR: how many tasks (default: one per --param-grid point, else 1).",
        ),
    ] = None,
    requires: Annotated[
        list[str] | None,
        typer.Option(
            "--requires",
            help="DIR: KEY=VALUE, what each task needs: gpu_memory_gb=24 (GPU memory [GB]; "
            "default job.toml's), device=cpu|gpu|any. Repeatable.",
        ),
    ] = None,
    param_grid: Annotated[
        Path | None,
        typer.Option(
            "--param-grid",
            help="DIR: JSON, one parameter object per task, or an object of lists (a product).",
        ),
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="DIR: NAME=PATH (packed with the job), NAME=https://…#sha256=HEX (fetched by "
            "each heater) or NAME=URL of another fsspec store (s3://…: read here with your "
            "credentials and packed). Repeatable; adds to or replaces job.toml's [inputs].",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="DIR: the job's name (default: DIR's name).")
    ] = None,
    energy_kwh: Annotated[
        float,
        typer.Option("--energy-kwh", min=1e-9, help="DIR: estimated energy per task [kWh]."),
    ] = 0.1,
    priority: Annotated[
        int, typer.Option("--priority", min=-100, max=100, help="DIR: larger runs first.")
    ] = 0,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="Your key for this submission (default: a new random one). Run the command "
            "again with the same key and spec, and you get the same job, never a second.",
        ),
    ] = None,
    url: Url = _DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Submit a job; prints its id. A dropped connection is retried, never doubling the job.

    A directory is packed into its artifact (named by its SHA-256) and uploaded only if the
    coordinator does not have it from you already; its tasks run it with their parameters.
    """
    key = idempotency_key or str(uuid.uuid4())
    if spec != "-" and Path(spec).is_dir():
        plan = DirectorySubmission.build(
            Path(spec),
            tasks=tasks,
            requires=requires or [],
            param_grid=param_grid,
            inputs=inputs or [],
            name=name,
            energy_kwh=energy_kwh,
            priority=priority,
        )
        uploaded = _upload_artifact(plan.artifact_file, plan.body["artifact"], url, api_key)
        job = _submit_body(plan.body, key, url, api_key)
        if as_json:
            typer.echo(json.dumps({**job, "artifact_uploaded": uploaded}))
            return
        artifact = plan.body["artifact"]
        typer.echo(
            f"artifact {artifact['sha256']} ({artifact['size_bytes']} bytes): "
            + ("uploaded" if uploaded else "already on the coordinator, not uploaded again")
        )
        typer.echo(f"job {job['job_id']} submitted: {job['task_count']} tasks")
        return
    directory_only = {
        "--tasks": tasks,
        "--requires": requires,
        "--param-grid": param_grid,
        "--input": inputs,
        "--name": name,
    }
    for option, value in directory_only.items():
        if value:
            raise InputError(f"{option}: only with a job directory; {spec!r} is not a directory")
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"SPEC: cannot read {spec!r}: {error.strerror or error}") from error
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"SPEC: {spec!r} is not JSON: {error}") from error
    job = _submit_body(body, key, url, api_key)
    if as_json:
        typer.echo(json.dumps(job))
        return
    typer.echo(f"job {job['job_id']} submitted: {job['task_count']} tasks")


def _submit_body(body: Any, key: str, url: str, api_key: str | None) -> dict[str, Any]:
    job: dict[str, Any] = _call(
        "POST",
        url,
        api_key,
        "/v1/jobs",
        json=body,
        headers={"Idempotency-Key": key},
        attempts=_SUBMIT_ATTEMPTS,
    )
    return job


def _upload_artifact(path: Path, ref: dict[str, Any], url: str, api_key: str | None) -> bool:
    """Upload the artifact at ``path`` unless the coordinator has it from us; True if sent."""
    where = f"/v1/artifacts/{ref['sha256']}"
    head = _send("HEAD", url, api_key, where, attempts=_SUBMIT_ATTEMPTS)
    if head.status_code == 200:
        return False
    if head.status_code != 404:
        raise InputError(f"the coordinator refused ({head.status_code}): {_detail(head)}")
    with path.open("rb") as blob:
        _call(
            "PUT",
            url,
            api_key,
            where,
            content=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
    return True


def _all_jobs(url: str, api_key: str | None, limit: int | None) -> list[dict[str, Any]]:
    """Every job (or the newest ``limit``), following the coordinator's page cursors."""
    jobs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": _PAGE_LIMIT}
    while limit is None or len(jobs) < limit:
        page = _call("GET", url, api_key, "/v1/jobs", params=params)
        jobs.extend(page["items"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    return jobs[:limit]


@_jobs.command("list")
def list_jobs(
    *,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show at most this many (default: all).")
    ] = None,
    url: Url = _DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """List your jobs (every job, for an operator), newest first."""
    jobs = _all_jobs(url, api_key, limit)
    if as_json:
        typer.echo(json.dumps(jobs))
        return
    headers = ("job_id", "name", "state", "done", "energy (kWh)", "cost (EUR)", "submitted")
    rows = [
        (
            job["job_id"],
            job["name"],
            job["state"],
            _done(job),
            f"{job['energy_j'] / 3.6e6:.3f}",
            f"{job['cost_eur']:.2f}",
            utc_text(job["created_ts"]),
        )
        for job in jobs
    ]
    print_table(headers, rows, ids={"job_id"})


@_jobs.command("show")
def show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    *,
    url: Url = _DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Show a job and its tasks."""
    job = _call("GET", url, api_key, f"/v1/jobs/{job_id}")
    if as_json:
        typer.echo(json.dumps(job))
        return
    console = Console()
    console.print(
        f"job {job['job_id']} '{job['name']}': {job['state']}, {_done(job)} tasks done, "
        f"{job['energy_j'] / 3.6e6:.3f} kWh, {job['cost_eur']:.2f} EUR "
        f"at {job['price_eur_per_kwh']:.3f} EUR/kWh",
        highlight=False,
    )
    if job["energy_j"] > 0:
        console.print(
            f"{job['heat_reused_energy_j'] / job['energy_j']:.0%} of that energy heated homes; "
            "the rest ran on devices without a room",
            highlight=False,
        )
    headers = ("#", "task_id", "state", "attempt", "progress (kWh)", "device", "last error")
    rows = [
        (
            str(task["task_index"]),
            task["task_id"],
            task["state"],
            str(task["attempt"]),
            f"{task['progress_energy_j'] / 3.6e6:.3f}/{task['energy_j'] / 3.6e6:.3f}",
            task["lease_device_id"] or "-",
            task["last_error"] or "",
        )
        for task in job["tasks"]
    ]
    print_table(headers, rows, ids={"task_id", "device"}, console=console)


@_jobs.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    *,
    url: Url = _DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a job: its queued tasks never run, its leased ones are stopped and paid."""
    job = _call("POST", url, api_key, f"/v1/jobs/{job_id}/cancel")
    if as_json:
        typer.echo(json.dumps(job))
        return
    typer.echo(f"job {job['job_id']}: {job['state']}")


@_jobs.command()
def report(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    *,
    url: Url = _DEFAULT_URL,
    api_key: ApiKey = None,
    as_json: AsJson = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also write the report as a PNG to this file.")
    ] = None,
    alternative: Annotated[
        _Alternative,
        typer.Option(help="The heating the homes would otherwise have used."),
    ] = _Alternative.GAS,
    pue: Annotated[
        float | None,
        typer.Option(
            min=1.0, max=5.0, help="The data centre's PUE to compare with (default: 1.56, cited)."
        ),
    ] = None,
) -> None:
    """Show where a job's energy went: per device, heat into homes, CO2 against a data centre."""
    params: dict[str, str | float] = {"alternative": alternative.value}
    if pue is not None:
        params["pue"] = pue
    body = _call("GET", url, api_key, f"/v1/jobs/{job_id}/report", params=params)
    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise InputError(f"--plot must name a .png file, got {str(plot)!r}")
        plot_report(body, plot)
    if as_json:
        typer.echo(json.dumps(body))
        return
    console = Console()
    print_report(body, console)
    if plot is not None:
        console.print(f"plot written to {plot}", highlight=False)


_jobs.command("run-local")(run_local)


@_jobs.command("example")
def example(
    name: Annotated[
        str | None, typer.Argument(help="The example to copy (omit to list them).")
    ] = None,
    dest: Annotated[
        Path | None,
        typer.Argument(help="A new directory to copy it into (default: ./NAME)."),
    ] = None,
) -> None:
    """List the example jobs that come with heatgrid, or copy one out to start from."""
    if name is None:
        names = example_names()
        if not names:
            typer.echo("no example jobs are installed with this heatgrid")
            return
        for each in names:
            typer.echo(each)
        return
    copied = copy_example(name, dest if dest is not None else Path(name))
    typer.echo(f"copied example {name!r} to {copied}; try it: heatgrid jobs run-local {copied}")


def register(app: typer.Typer) -> None:
    """Add the ``jobs`` group to the ``heatgrid`` app."""
    app.add_typer(_jobs, name="jobs")
