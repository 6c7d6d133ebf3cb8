"""Routes for job submitters: submit, list, show and cancel jobs; read ledger balances."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from heatgrid.coordinator import job_report, jobs, ledger, views
from heatgrid.coordinator.api.deps import (
    Cursor,
    Limit,
    NowTs,
    SessionDep,
    SettingsDep,
    require_scope,
)
from heatgrid.coordinator.api.job_schemas import (
    AttemptInfo,
    JobDetail,
    JobInfo,
    JobPage,
    JobReport,
    JobSubmission,
    TaskInfo,
    TaskPage,
)
from heatgrid.coordinator.api.schemas import Balance, BalancePage
from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.db.models import IDEMPOTENCY_KEY_LENGTH, Job
from heatgrid.coordinator.pages import DEFAULT_PAGE_LIMIT, PageRequest, encode_cursor
from heatgrid.core.job_report import DATA_CENTRE_PUE

__all__ = ["router"]

router = APIRouter(tags=["jobs"])

_Reader = Annotated[AccountPrincipal, Depends(require_scope("jobs:read"))]
_Writer = Annotated[AccountPrincipal, Depends(require_scope("jobs:write"))]
_LedgerReader = Annotated[AccountPrincipal, Depends(require_scope("ledger:read"))]
_TASK_CURSOR_KINDS = (int,)
"""Types of the sort key (task_index) in a cursor of the task list."""


def _job_infos(session: SessionDep, found: list[Job]) -> list[JobInfo]:
    """Return the wire form of the read models (:func:`views.job_summaries`), field by field."""
    return [
        JobInfo.model_validate(summary, from_attributes=True, strict=False)
        for summary in views.job_summaries(session, found)
    ]


def _task_infos(session: SessionDep, job_id: str, tasks: list[views.TaskView]) -> list[TaskInfo]:
    """Return the wire form of a job's tasks (in index order) with their attempts."""
    attempts = views.task_attempts(session, job_id, tasks)
    return [
        TaskInfo.model_validate(task, from_attributes=True, strict=False).model_copy(
            update={
                "attempts": [
                    AttemptInfo.model_validate(run, from_attributes=True, strict=False)
                    for run in attempts[task.task_id]
                ]
            }
        )
        for task in tasks
    ]


_IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_LENGTH,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "A key of yours for this submission (visible ASCII, e.g. a UUID): sending it again "
            "with the same body returns the job it created (200) instead of a new one; with "
            "another body, 409. Retry a submission whose answer you did not get with its key."
        ),
    ),
]


@router.post(
    "/v1/jobs",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": JobInfo, "description": "The job an earlier request created"}},
)
def submit_job(
    *,
    body: JobSubmission,
    actor: _Writer,
    session: SessionDep,
    now_ts: NowTs,
    settings: SettingsDep,
    response: Response,
    idempotency_key: _IdempotencyKey = None,
) -> JobInfo:
    """Submit a job; its tasks are queued at once (201), or find it again by its key (200)."""
    job, created = jobs.submit_job(
        session, actor, body, now_ts=now_ts, settings=settings, idempotency_key=idempotency_key
    )
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return _job_infos(session, [job])[0]


@router.get("/v1/jobs")
def list_jobs(
    *,
    actor: _Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> JobPage:
    """List the caller's jobs (an operator: every job), newest first, a page at a time."""
    page = PageRequest.from_query(limit, cursor, jobs.JOB_CURSOR_KINDS)
    found, next_cursor = jobs.list_jobs(session, actor, page)
    return JobPage(items=_job_infos(session, list(found)), next_cursor=next_cursor)


@router.get("/v1/jobs/{job_id}")
def show_job(job_id: str, actor: _Reader, session: SessionDep) -> JobDetail:
    """Show one of the caller's jobs with its tasks and results."""
    job = jobs.get_job(session, job_id, actor)
    tasks = _task_infos(session, job.id, views.task_views(session, job.id))
    return JobDetail(**_job_infos(session, [job])[0].model_dump(), tasks=tasks)


@router.get("/v1/jobs/{job_id}/report")
def report_job(
    *,
    job_id: str,
    actor: _Reader,
    session: SessionDep,
    alternative: job_report.ReportAlternative = "gas",
    pue: Annotated[float, Query(ge=1.0, le=5.0)] = DATA_CENTRE_PUE,
) -> JobReport:
    """Where one of the caller's jobs' energy went: per device, heat into homes, CO2.

    ``alternative`` is the heating the homes would otherwise have used (``gas`` or
    ``resistive``), ``pue`` the data centre's power usage effectiveness to compare with.
    """
    job = jobs.get_job(session, job_id, actor)
    return job_report.build_job_report(session, job, alternative=alternative, pue=pue)


@router.get("/v1/jobs/{job_id}/tasks")
def list_tasks(
    *,
    job_id: str,
    actor: _Reader,
    session: SessionDep,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> TaskPage:
    """List one of the caller's jobs' tasks with their results, in index order, a page at a time."""
    page = PageRequest.from_query(limit, cursor, _TASK_CURSOR_KINDS)
    job = jobs.get_job(session, job_id, actor)
    after = None if page.after is None else int(page.after[0])
    found = views.task_views(session, job.id, after_index=after, limit=page.limit + 1)
    tasks = _task_infos(session, job.id, found[: page.limit])
    more = len(found) > page.limit
    return TaskPage(
        items=tasks, next_cursor=encode_cursor((tasks[-1].task_index,)) if more else None
    )


@router.post("/v1/jobs/{job_id}/cancel")
def cancel_job(
    job_id: str, actor: _Writer, session: SessionDep, now_ts: NowTs, settings: SettingsDep
) -> JobInfo:
    """Cancel one of the caller's running jobs; running tasks are stopped and settled."""
    job = jobs.cancel_job(session, job_id, actor, now_ts=now_ts, settings=settings)
    return _job_infos(session, [job])[0]


@router.get("/v1/ledger/balances")
def balances(
    *,
    actor: _LedgerReader,
    session: SessionDep,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    cursor: Cursor = None,
) -> BalancePage:
    """Balances of the caller's ledger accounts (an operator: every account), by account."""
    page = PageRequest.from_query(limit, cursor, ledger.BALANCE_CURSOR_KINDS)
    if actor.is_operator:
        found, next_cursor = ledger.balance_page(session, None, page)
    else:
        account = f"{'owner' if actor.role == 'owner' else 'submitter'}:{actor.account_id}"
        found, next_cursor = ledger.balance_page(session, account, page)
    return BalancePage(
        items=[
            Balance(account=account, unit=unit, amount=amount) for account, unit, amount in found
        ],
        next_cursor=next_cursor,
    )
