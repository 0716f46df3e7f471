"""``casework schedule create|list|delete``: cases of any process started on a calendar or an
interval, by Temporal Schedules.

A schedule starts the case its input names, under the input's business key: Temporal appends the
time of each run to the case ID (``customer-onboarding-APP-1-2026-01-01T09:00:00Z``), so every
run is a case of its own. The input is checked against the process's input model when the
schedule is created, not first when it fires.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from casework.catalogue import Process, discover
from casework.cli.cases import CommandError, validate_input
from casework.cli.output import table
from casework.config import Settings
from casework.governance.models import format_duration, parse_duration
from casework.starting import case_search_attributes

OVERLAP: dict[str, ScheduleOverlapPolicy] = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer-one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer-all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel-other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate-other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow-all": ScheduleOverlapPolicy.ALLOW_ALL,
}
PROCESS_MEMO = "casework_process"
WHEN_MEMO = "casework_when"

DESCRIPTION = """\
Manage Temporal Schedules that start cases of a catalogue process on a calendar (cron) or at
an interval. Each run starts a case of its own: the case ID is the input's business key with
the run's time appended. The Web UI's Schedules page shows them too.

examples:
  casework schedule create customer-onboarding --id high-risk-review-APP-1001 \\
      --cron "0 9 1 * *" --input @application.json      09:00 UTC on the 1st of each month
  casework schedule create refund --id nightly-refund-check --every 24h --overlap buffer-one \\
      --input '{"order_id": "ORD-1", "amount": "10.00", "reason": "..."}'
  casework schedule list
  casework schedule delete high-risk-review-APP-1001
  temporal schedule trigger --schedule-id high-risk-review-APP-1001    run it once now
"""

OVERLAP_HELP = (
    "what a run does while the previous run's case is still open: skip (default: the new run "
    "is skipped), buffer-one (start it when the open one ends; at most one waits), buffer-all "
    "(start each, in turn), cancel-other (cancel the open case, then start), terminate-other "
    "(terminate it, then start), allow-all (start it alongside)"
)


def _interval(value: str) -> timedelta:
    every = parse_duration(value)
    if not isinstance(every, timedelta) or every <= timedelta(0):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an interval: a number and a unit, e.g. 30m, 12h, 7d or 1w"
        )
    return every


def add_parser(commands: Any, processes: dict[str, Process]) -> None:
    schedule = commands.add_parser(
        "schedule",
        help="start cases on a calendar or at an interval (Temporal Schedules)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="create a schedule that starts cases of a process",
        description="Create a schedule that starts a case of PROCESS with the given input on "
        "every --cron time or --every interval. The input is checked against the process's "
        "input model (and who submits against the directory) before the schedule exists.",
    )
    create.add_argument(
        "process",
        choices=sorted(processes),
        help="; ".join(f"{p.name}: {p.description}" for p in processes.values()),
    )
    create.add_argument(
        "--id", dest="schedule_id", required=True, help="the schedule's ID (unique per namespace)"
    )
    create.add_argument(
        "--input", required=True, metavar="JSON|@FILE", help="case input as JSON or @file.json"
    )
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--cron",
        action="append",
        metavar="EXPR",
        help='a cron expression in UTC, e.g. "0 9 1 * *" (09:00 on the 1st of each month); '
        "repeat for several",
    )
    when.add_argument(
        "--every", type=_interval, metavar="DURATION", help="an interval, e.g. 12h, 7d, 4w"
    )
    create.add_argument("--overlap", choices=sorted(OVERLAP), default="skip", help=OVERLAP_HELP)
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--note", help="why it exists, shown with it in the Web UI")

    listing = actions.add_parser("list", help="list schedules, with their process and next run")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    delete = actions.add_parser(
        "delete", help="delete a schedule (the cases it started stay as they are)"
    )
    delete.add_argument("schedule_id", help="the schedule's ID")


def prepare(args: argparse.Namespace) -> BaseModel | None:
    """The checked input of a schedule to create, before any connection is made."""
    if args.schedule_command != "create":
        return None
    return validate_input(args.process, args.input)


async def run(
    client: Client, settings: Settings, args: argparse.Namespace, request: BaseModel | None
) -> int:
    match args.schedule_command:
        case "create":
            assert request is not None
            return await create(client, settings, args, request)
        case "list":
            return await list_schedules(client, args.json)
        case "delete":
            return await delete(client, args.schedule_id)
    raise AssertionError(f"unhandled schedule command {args.schedule_command}")


async def create_schedule(
    client: Client,
    schedule_id: str,
    process: Process,
    request: BaseModel,
    task_queue: str,
    *,
    cron: list[str] | None = None,
    every: timedelta | None = None,
    overlap: str = "skip",
    paused: bool = False,
    note: str | None = None,
) -> str:
    """A schedule starting a case of ``process`` with ``request`` on every ``cron`` time or
    ``every`` interval; returns when it runs, for people. ``ScheduleAlreadyRunningError`` when
    the ID is taken."""
    if every is not None:
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)])
        when = f"every {format_duration(every)}"
    else:
        spec = ScheduleSpec(cron_expressions=list(cron or []))
        when = "cron " + "; ".join(cron or [])
    await client.create_schedule(
        schedule_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                process.workflow_type,
                request,
                id=process.case_id(request),
                task_queue=task_queue,
                typed_search_attributes=case_search_attributes(process),
            ),
            spec=spec,
            policy=SchedulePolicy(overlap=OVERLAP[overlap]),
            state=ScheduleState(paused=paused, note=note),
        ),
        memo={PROCESS_MEMO: process.name, WHEN_MEMO: when},
    )
    return when


async def create(
    client: Client, settings: Settings, args: argparse.Namespace, request: BaseModel
) -> int:
    process = discover().process(args.process)
    try:
        when = await create_schedule(
            client,
            args.schedule_id,
            process,
            request,
            settings.task_queue,
            cron=args.cron,
            every=args.every,
            overlap=args.overlap,
            paused=args.paused,
            note=args.note,
        )
    except ScheduleAlreadyRunningError as error:
        raise CommandError(f"schedule {args.schedule_id} already exists") from error
    except RPCError as error:
        if error.status is RPCStatusCode.INVALID_ARGUMENT:
            raise CommandError(f"Temporal refused the schedule: {error.message}") from error
        raise
    print(
        f"created schedule {args.schedule_id}: {process.name} {when} (overlap {args.overlap})"
        + (", paused" if args.paused else "")
    )
    print(f"  each run starts a case {process.case_id(request)}-<time of the run>")
    print(f"  run it now: temporal schedule trigger --schedule-id {args.schedule_id}")
    return 0


async def list_schedules(client: Client, as_json: bool) -> int:
    rows: list[dict[str, Any]] = []
    async for listed in await client.list_schedules():
        memo = await listed.memo()
        action = listed.schedule.action if listed.schedule else None
        workflow_type = getattr(action, "workflow", "")
        process = discover().process_of_workflow_type(workflow_type)
        next_runs = listed.info.next_action_times if listed.info else []
        rows.append(
            {
                "schedule_id": listed.id,
                "process": memo.get(PROCESS_MEMO) or (process.name if process else workflow_type),
                "when": memo.get(WHEN_MEMO, ""),
                "paused": bool(listed.schedule and listed.schedule.state.paused),
                "next_run": next_runs[0].isoformat() if next_runs else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no schedules")
        return 0
    print(
        table(
            ["SCHEDULE", "PROCESS", "WHEN", "NEXT RUN"],
            [
                [
                    row["schedule_id"],
                    row["process"],
                    row["when"],
                    "paused" if row["paused"] else row["next_run"] or "-",
                ]
                for row in rows
            ],
        )
    )
    return 0


async def delete(client: Client, schedule_id: str) -> int:
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CommandError(f"no schedule {schedule_id}") from error
        raise
    print(f"deleted schedule {schedule_id}")
    return 0
