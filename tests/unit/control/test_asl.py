"""The channel state machine definition: placeholders supplied, Retry/Catch everywhere, no dead ends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.control.asl import STATEMACHINES, load, placeholders, render, substitutions
from chalicelib.errors import ValidationError

ARN = "arn:aws:lambda:us-east-1:123456789012:function:slipstream-dev-lifecycle"
FILES = sorted(STATEMACHINES.glob("*.asl.json"))


def _all_states(states: dict[str, Any]) -> dict[str, Any]:
    out = dict(states)
    for st in states.values():
        for branch in st.get("Branches", []):
            out.update(_all_states(branch["States"]))
        if "ItemProcessor" in st:
            out.update(_all_states(st["ItemProcessor"]["States"]))
    return out


def test_there_is_a_channel_state_machine() -> None:
    assert [p.name for p in FILES] == ["channel.asl.json"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_placeholder_is_supplied_by_the_one_substitutions_dict(path: Path) -> None:
    text = path.read_text()
    json.loads(text)  # valid JSON before substitution, too
    subs = substitutions(ARN)
    assert placeholders(text) <= subs.keys()
    rendered = render(path.name.removesuffix(".asl.json"), subs)
    assert "${" not in rendered


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_task_has_retry_and_catch_and_every_transition_lands_on_a_state(path: Path) -> None:
    doc = load(path.name.removesuffix(".asl.json"), substitutions(ARN))
    states = _all_states(doc["States"])
    assert doc["StartAt"] in states
    targets: set[str] = {doc["StartAt"]}
    for name, st in states.items():
        if st["Type"] == "Task":
            assert st.get("Retry"), f"{name} has no Retry"
            assert any("States.ALL" in c["ErrorEquals"] for c in st.get("Catch", [])), f"{name} has no Catch"
        nexts = [st.get("Next"), st.get("Default"), *(c["Next"] for c in st.get("Choices", [])),
                 *(c["Next"] for c in st.get("Catch", []))]
        for n in filter(None, nexts):
            assert n in states, f"{name} -> unknown state {n}"
            targets.add(n)
        if st["Type"] not in ("Succeed", "Fail", "Choice"):
            assert st.get("Next") or st.get("End"), f"{name} is a dead end"
    assert set(states) == targets, f"unreachable: {set(states) - targets}"


def test_commands_are_delivered_with_wait_for_task_token_and_the_watchdog_times_out_into_a_tick() -> None:
    states = load("channel", substitutions(ARN, watchdog_interval=5))["States"]
    waits = {n for n, s in states.items() if s.get("Resource", "").endswith(".waitForTaskToken")}
    assert waits == {"AwaitCommand", "AwaitWhileRunning"}
    for n in waits:
        assert states[n]["Parameters"]["Payload"]["token.$"] == "$$.Task.Token"
    running = states["AwaitWhileRunning"]
    assert running["TimeoutSecondsPath"] == "$.config.interval"
    assert running["Catch"][0] == {"ErrorEquals": ["States.Timeout"], "ResultPath": None, "Next": "Tick"}
    assert states["Configure"]["Parameters"]["interval.$"] == "States.StringToJson('5')"


def test_every_failure_path_ends_in_the_error_state_the_api_reports() -> None:
    states = load("channel", substitutions(ARN))["States"]
    for name, st in states.items():
        if st["Type"] == "Task" and name != "MarkError":
            assert st["Catch"][-1]["Next"] == "MarkError"
    assert states["MarkError"]["Parameters"]["state"] == "ERROR"
    assert states["MarkError"]["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"


@pytest.mark.parametrize(
    "kwargs",
    [{"lifecycle_function_arn": "not-an-arn"}, {"watchdog_interval": 0}, {"input_gap": 700, "input_loss_stop": 600},
     {"rollover_ticks": 5000}, {"watchdog_interval": True}],
)
def test_given_nonsense_settings_then_substitutions_refuse(kwargs: dict[str, Any]) -> None:
    args = {"lifecycle_function_arn": ARN, **kwargs}
    with pytest.raises(ValidationError):
        substitutions(**args)


def test_given_a_missing_substitution_then_render_names_it() -> None:
    subs = substitutions(ARN)
    del subs["InputGapSeconds"]
    with pytest.raises(ValidationError, match="InputGapSeconds"):
        render("channel", subs)
