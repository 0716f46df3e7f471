"""``casework reassign | delegate | escalate``: hand a task on or escalate it, from the shell.

Each is signed with the sender's key and sent as the case's validated update of the same name,
through :func:`casework.decisions.send_act`, the path the review queue uses too; the case
refuses, with its reasons, what the sender may not do.
"""

from __future__ import annotations

import argparse

from pydantic import ValidationError
from temporalio.client import Client

from casework.case.tasks import TaskAct, TaskActKind
from casework.cli.cases import CommandError
from casework.config import Settings
from casework.converter import describe_validation_error
from casework.decisions import DecisionError, send_act
from casework.signing_keys import SigningKeyError, load_signing_key, signing_keys_dir

VERBS = tuple(kind.value for kind in TaskActKind)

HELP = {
    TaskActKind.REASSIGN: "hand a task to another person or role eligible for it",
    TaskActKind.DELEGATE: "hand a task you hold to another eligible person, saying why",
    TaskActKind.ESCALATE: "move an approval task to its next tier now, before its SLA passes",
}

DESCRIPTION = {
    TaskActKind.REASSIGN: "Reassign a task of a waiting case to another person (--to) or role "
    "(--to-role) eligible for it. Anyone who may act on the task may reassign it. The case "
    "records who reassigned it and why, and notifies whoever now holds it.",
    TaskActKind.DELEGATE: "Delegate a task you hold (assigned to you, or waiting on your role) to "
    "another person eligible for it, for example while you are away. The reason is recorded in "
    "the case's audit trail.",
    TaskActKind.ESCALATE: "Escalate an approval task to the next tier of its policy now, instead "
    "of waiting for its SLA to pass. Refused at the last tier, or when the policy does not "
    "escalate.",
}


def add_to(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for kind in TaskActKind:
        verb = commands.add_parser(kind.value, help=HELP[kind], description=DESCRIPTION[kind])
        verb.add_argument("case", help="the case (workflow ID)")
        verb.add_argument("--as", dest="user", required=True, help="who acts (directory user)")
        verb.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
        verb.add_argument("--task", help="which task, when you may act on several")
        if kind is not TaskActKind.ESCALATE:
            verb.add_argument("--to", dest="to_user", metavar="USER", help="the person it goes to")
        if kind is TaskActKind.REASSIGN:
            verb.add_argument("--to-role", metavar="ROLE", help="or the role it goes to")


def act_of(kind: TaskActKind, args: argparse.Namespace) -> TaskAct:
    to_user = getattr(args, "to_user", None)
    to_role = getattr(args, "to_role", None)
    if kind is TaskActKind.REASSIGN and (to_user is None) == (to_role is None):
        raise CommandError("reassign needs exactly one of --to USER or --to-role ROLE")
    if kind is TaskActKind.DELEGATE and to_user is None:
        raise CommandError("delegate needs --to USER: the person who takes the task")
    try:
        return TaskAct(
            actor=args.user,
            reason=args.reason,
            task_id=args.task,
            to_user=to_user,
            to_role=to_role,
        )
    except ValidationError as error:
        raise CommandError(describe_validation_error(error)) from error


async def send(
    client: Client, settings: Settings, case_id: str, kind: TaskActKind, act: TaskAct
) -> int:
    try:
        key = load_signing_key(act.actor, signing_keys_dir(settings.state_dir))
        receipt = await send_act(client, case_id, kind.value, act, key)
    except (SigningKeyError, DecisionError) as error:
        raise CommandError(str(error)) from error
    print(receipt.message)
    return 0
