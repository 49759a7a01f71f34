"""The `lifecycle` Lambda: the tasks statemachines/channel.asl.json calls, dispatched on "action".

Actions (payload fields in brackets):
  await_command [channel_id, token, state]    park the execution in `state` and store its token
  set_state     [channel_id, state, expect, error?, cause?]
  check_input   [channel_id, gap_after, stop_after]  the input-loss watchdog
  finalize      [channel_id]                  live-to-VOD through the Finalizer port
  rollover      [channel_id, state_machine_arn]  continue in a fresh execution (history limit)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..errors import ConflictError, NotFoundError, StateTransitionError, ValidationError
from ..obs import bind, logger
from ..records import (
    CREATING,
    DELETED,
    ERROR,
    IDLE,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    iso,
    parse_iso,
    validate_id,
)
from .channels import execution_name
from .ports import Control

# The states an execution may park in, and the states it may enter them from.
_ENTER_FROM = {IDLE: (CREATING, IDLE), STOPPED: (STOPPED,), RUNNING: (RUNNING,)}
# A state the API claimed while no task was waiting: the command the execution should act on.
_PENDING = {STARTING: "start", STOPPING: "stop", DELETED: "delete"}


def handle(ctl: Control, event: Mapping[str, Any]) -> dict[str, Any]:
    try:
        # Every log line of a task names its channel and action (the ASL's payload, unvalidated
        # here: _dispatch rejects a bad id before it reaches any store).
        with bind(channel=str(event.get("channel_id") or "")[:80] or None, action=event.get("action")):
            return _dispatch(ctl, event)
    except KeyError as e:  # a payload the ASL should never send: fail loudly, by name
        raise ValidationError(f"lifecycle {event.get('action')!r} event lacks field {e}") from None


def _dispatch(ctl: Control, event: Mapping[str, Any]) -> dict[str, Any]:
    action = event.get("action")
    channel_id = validate_id(event.get("channel_id"))
    if action == "await_command":
        return await_command(ctl, channel_id, str(event["token"]), str(event["state"]))
    if action == "set_state":
        return set_state(ctl, channel_id, str(event["state"]), tuple(event.get("expect") or ()),
                         error=_error_text(event))
    if action == "check_input":
        return check_input(ctl, channel_id, float(event["gap_after"]), float(event["stop_after"]))
    if action == "finalize":
        ctl.finalizer.finalize(channel_id)
        return {"finalized": True}
    if action == "rollover":
        return rollover(ctl, channel_id, str(event.get("execution_name") or ""))
    raise ValidationError(f"unknown lifecycle action {action!r}")


def _error_text(event: Mapping[str, Any]) -> str:
    """The Catch's {"Error", "Cause"} as one line; Lambda causes are JSON, show their message."""
    err = event.get("error")
    if not err:
        return ""
    if not isinstance(err, Mapping):
        return str(err)[:1000]
    cause = str(err.get("Cause") or "")
    with contextlib.suppress(ValueError, AttributeError):
        cause = str(json.loads(cause).get("errorMessage", cause))
    return f"{err.get('Error', 'Error')}: {cause}"[:1000]


def await_command(ctl: Control, channel_id: str, token: str, state: str) -> dict[str, Any]:
    """Park in `state` with this token; if the API already claimed a command, take it now."""
    if state not in _ENTER_FROM:
        raise ValidationError(f"cannot wait for commands in state {state}")
    now = iso(ctl.clock())
    try:
        ctl.store.update(
            channel_id,
            {"state": state, "task_token": token},
            expect_states=_ENTER_FROM[state],
            remove=("input_lost_at",) if state != RUNNING else (),
            now=now,
        )
        return {"parked": state}
    except (StateTransitionError, NotFoundError):  # NotFound: the API deleted it meanwhile
        current = ctl.store.get(channel_id, include_deleted=True).state
        command = _PENDING.get(current)
        if command is None:
            raise
        # The API's claim landed while this task was not yet parked: deliver it ourselves.
        ctl.lifecycle.send_command(token, command)
        return {"parked": state, "self_completed": command}


def set_state(
    ctl: Control, channel_id: str, state: str, expect: tuple[str, ...], error: str = ""
) -> dict[str, Any]:
    now = iso(ctl.clock())
    changes: dict[str, Any] = {"state": state, "task_token": ""}
    if state == RUNNING:
        changes["started_at"] = now
    if state == ERROR:
        changes["error"] = error or "lifecycle failed"
        expect = expect or (CREATING, IDLE, STARTING, RUNNING, STOPPING, STOPPED, ERROR)
    ctl.store.update(channel_id, changes, expect_states=expect or None, now=now)
    logger.info("channel state set", extra={"state": state, "error": changes.get("error")})
    return {"state": state}


def check_input(ctl: Control, channel_id: str, gap_after: float, stop_after: float) -> dict[str, Any]:
    """The watchdog: how long since the newest chunk arrived (or since the run started)?

    > gap_after: mark the gap on the channel and emit the InputGapSeconds metric (the alarm);
    > stop_after: claim RUNNING -> STOPPING ourselves and tell the ASL to stop.
    """
    record = ctl.store.get(channel_id, include_deleted=True)
    if record.state != RUNNING:
        return {"verdict": "stop" if record.state == STOPPING else "ok", "state": record.state}
    now = ctl.clock()
    marks = [t for t in (record.last_segment_at, record.started_at) if t]
    last = max(parse_iso(t) for t in marks) if marks else now
    age = max(0.0, (now - last).total_seconds())
    if age > stop_after:
        with contextlib.suppress(ConflictError):  # the operator stopped it at the same moment: same outcome
            ctl.store.transition(
                channel_id, STOPPING, (RUNNING,), now=iso(now), task_token="",
                error=f"input lost for {age:.0f}s; stopped by the watchdog",
            )
        ctl.metrics.input_gap(channel_id, age)
        logger.error("input lost: the watchdog stops the channel", extra={"age_seconds": round(age, 1)})
        return {"verdict": "stop", "age": age}
    if age > gap_after:
        ctl.metrics.input_gap(channel_id, age)
        logger.warning("input gap", extra={"age_seconds": round(age, 1)})
        raw = ctl.store.get_raw(channel_id) or {}
        if not raw.get("input_lost_at"):
            ctl.store.update(channel_id, {"input_lost_at": iso(last)}, expect_states=(RUNNING,), now=iso(now))
        return {"verdict": "gap", "age": age}
    raw = ctl.store.get_raw(channel_id) or {}
    if raw.get("input_lost_at"):  # input is back: clear the mark
        ctl.store.update(channel_id, {}, expect_states=(RUNNING,), remove=("input_lost_at",), now=iso(now))
    return {"verdict": "ok", "age": age}


def rollover(ctl: Control, channel_id: str, current_execution: str = "") -> dict[str, Any]:
    """Hand a long-running channel to a fresh execution (an execution's history is bounded at
    25,000 events, about half a day of watchdog ticks). The new one resumes in RUNNING.

    The successor's name derives from the current execution's name, so a retried Rollover task
    starts the same execution again (Step Functions answers ExecutionAlreadyExists, which the
    adapter takes as done) instead of a second watchdog that would later flip the channel to ERROR."""
    now = ctl.clock()
    if current_execution:
        digest = hashlib.sha256(current_execution.encode()).hexdigest()[:13]
        name = f"{validate_id(channel_id)}-{digest}"
    else:  # an execution of an older definition that does not pass its name
        name = execution_name(channel_id, int(now.timestamp() * 1000))
    arn = ctl.lifecycle.start(name, channel_id, resume=True)
    ctl.store.update(channel_id, {"execution_arn": arn}, now=iso(now))
    return {"execution_arn": arn}
