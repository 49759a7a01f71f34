"""Start/stop through the API and the lifecycle Lambda the state machine calls.

The API claims a transition with a conditional write and hands the command to the parked
execution; the execution (played by `Execution`) moves the rest of the way.
"""

from __future__ import annotations

import pytest
from control_harness import Api, serialise_moto

from chalicelib.errors import StateTransitionError, ValidationError
from chalicelib.records import iso

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def state(api: Api, cid: str = "news") -> str:
    return str(api.call("GET", f"/channels/{cid}").json_body["state"])


def test_given_an_idle_channel_when_started_then_the_parked_token_gets_start_and_it_runs(api: Api) -> None:
    api.create("news")
    resp = api.call("POST", "/channels/news/start")
    assert resp.status_code == 202
    assert resp.json_body["state"] == "STARTING"
    assert api.lifecycle.commands == [("token-news-1", "start")]
    api.execution.run("news")
    assert state(api) == "RUNNING"
    assert api.call("GET", "/channels/news/status").json_body["started_at"] == iso(api.clock.now)


def test_given_a_start_already_claimed_when_started_again_then_409_and_one_command_only(api: Api) -> None:
    api.create("news")
    assert api.call("POST", "/channels/news/start").status_code == 202
    second = api.call("POST", "/channels/news/start")
    assert second.status_code == 409
    assert second.json_body["error"] == "StateTransitionError"
    assert "STARTING" in second.json_body["message"]
    assert [c for _, c in api.lifecycle.commands] == ["start"]


@pytest.mark.parametrize("action", ["stop"])
def test_given_an_idle_channel_when_stopped_then_409(api: Api, action: str) -> None:
    api.create("news")
    resp = api.call("POST", f"/channels/news/{action}")
    assert resp.status_code == 409
    assert state(api) == "IDLE"


def test_given_a_dead_execution_when_started_then_503_and_the_channel_stays_idle(api: Api) -> None:
    api.create("news")
    api.lifecycle.stale.add("token-news-1")
    resp = api.call("POST", "/channels/news/start")
    assert resp.status_code == 503
    assert "nothing was changed" in resp.json_body["message"]
    assert state(api) == "IDLE"


def test_given_a_running_channel_when_stopped_then_vod_is_finalized_and_it_can_restart(api: Api) -> None:
    token = api.running("news")
    resp = api.call("POST", "/channels/news/stop")
    assert resp.status_code == 202 and resp.json_body["state"] == "STOPPING"
    assert api.lifecycle.commands[-1] == (token, "stop")
    api.execution.stop("news")
    assert api.recorder.finalized == ["news"]
    assert state(api) == "STOPPED"
    assert api.call("POST", "/channels/news/start").status_code == 202
    api.execution.run("news")
    assert state(api) == "RUNNING"


def test_given_the_running_token_rotated_when_stopped_then_the_next_tick_takes_the_stop_itself(api: Api) -> None:
    token = api.running("news")
    api.lifecycle.stale.add(token)  # the watchdog tick timed the task out just before the API sent
    assert api.call("POST", "/channels/news/stop").status_code == 202
    assert state(api) == "STOPPING"
    # The next tick parks again: await_command sees the claimed STOPPING and completes itself.
    api.execution.park("news", "RUNNING")
    assert api.lifecycle.commands[-1] == ("token-news-3", "stop")
    assert state(api) == "STOPPING"


def test_given_a_start_claimed_before_the_stopped_execution_parked_then_it_self_completes(api: Api) -> None:
    api.running("news")
    api.call("POST", "/channels/news/stop")
    api.execution.call("finalize", "news")
    api.execution.call("set_state", "news", state="STOPPED", expect=["STOPPING"])
    # The operator starts again in the instant between STOPPED and the execution parking.
    assert api.call("POST", "/channels/news/start").status_code == 202
    token = api.execution.park("news", "STOPPED")
    assert api.lifecycle.commands[-1] == (token, "start")
    assert state(api) == "STARTING"


def test_given_a_lifecycle_failure_when_marked_error_then_status_reports_it_and_start_is_refused(api: Api) -> None:
    api.create("news")
    api.execution.call("set_state", "news", state="ERROR",
                       error={"Error": "Lambda.Unknown", "Cause": '{"errorMessage": "finalize blew up"}'})
    status = api.call("GET", "/channels/news/status").json_body
    assert status["state"] == "ERROR"
    assert status["errors"]["last"] == "Lambda.Unknown: finalize blew up"
    assert api.call("POST", "/channels/news/start").status_code == 409
    arn = api.ctl.store.get("news").execution_arn
    assert api.call("DELETE", "/channels/news").status_code == 200
    assert api.lifecycle.stopped == [arn]  # no task waits in ERROR: the execution is stopped instead


def test_given_illegal_lifecycle_transitions_when_requested_by_the_asl_then_refused(api: Api) -> None:
    api.create("news")
    with pytest.raises(StateTransitionError, match="IDLE"):
        api.execution.call("set_state", "news", state="RUNNING", expect=["STARTING"])
    with pytest.raises(ValidationError):
        api.execution.park("news", "STOPPING")
    with pytest.raises(ValidationError, match="unknown lifecycle action"):
        api.execution.call("explode", "news")


class TestWatchdog:
    def tick(self, api: Api) -> str:
        return str(api.execution.call("check_input", "news", gap_after=6, stop_after=600)["verdict"])

    def test_given_fresh_input_then_ok_and_no_alarm(self, api: Api) -> None:
        api.running("news")
        api.clock.advance(3)
        assert self.tick(api) == "ok"
        assert api.recorder.gaps == []

    def test_given_no_segment_for_n_seconds_then_gap_marked_and_metric_raised(self, api: Api) -> None:
        api.running("news")
        started = api.clock.now
        api.clock.advance(10)
        assert self.tick(api) == "gap"
        assert api.recorder.gaps == [("news", 10.0)]
        assert api.call("GET", "/channels/news/status").json_body["input_lost_since"] == iso(started)
        # A segment arrives (the pipeline writes last_segment_at): the mark clears on the next tick.
        arrived = api.clock.now
        api.ctl.store.update("news", {"last_segment_at": iso(arrived), "last_seq": 4, "last_run": 1})
        api.clock.advance(2)
        assert self.tick(api) == "ok"
        status = api.call("GET", "/channels/news/status").json_body
        assert status["input_lost_since"] is None
        assert status["last_segment"] == {"seq": 4, "received_at": iso(arrived), "age_seconds": 2.0}
        assert status["latency_seconds"] == 2.0 + 3 * 2.0

    def test_given_no_segment_for_m_minutes_then_the_watchdog_stops_the_channel(self, api: Api) -> None:
        api.running("news")
        api.clock.advance(601)
        assert self.tick(api) == "stop"
        body = api.call("GET", "/channels/news").json_body
        assert body["state"] == "STOPPING"
        assert "input lost for 601s" in body["error"]
        api.execution.stop("news")
        assert api.recorder.finalized == ["news"] and state(api) == "STOPPED"

    def test_given_the_operator_stopped_then_the_tick_says_stop(self, api: Api) -> None:
        token = api.running("news")
        api.lifecycle.stale.add(token)
        api.call("POST", "/channels/news/stop")
        assert self.tick(api) == "stop"


def test_given_a_long_run_when_rolled_over_then_a_resuming_execution_takes_over(api: Api) -> None:
    api.running("news")
    api.clock.advance(3600)
    out = api.execution.call("rollover", "news")
    name, cid, resume = api.lifecycle.started[-1]
    assert (cid, resume) == ("news", True) and name != api.lifecycle.started[0][0]
    assert out["execution_arn"].endswith(name)
    assert state(api) == "RUNNING"


def test_given_a_retried_rollover_then_one_successor_execution_not_two(api: Api) -> None:
    """A Rollover task retried after a timeout must not start a second watchdog for the channel."""
    api.running("news")
    current = api.lifecycle.started[-1][0]
    first = api.execution.call("rollover", "news", execution_name=current)
    again = api.execution.call("rollover", "news", execution_name=current)
    assert first["execution_arn"] == again["execution_arn"]
    names = [n for n, _, resume in api.lifecycle.started if resume]
    assert len(names) == 2 and names[0] == names[1]  # same name twice: Step Functions ran it once
    sfn = api.lifecycle.real._sfn
    running = sfn.list_executions(stateMachineArn=api.lifecycle.real._arn, statusFilter="RUNNING")["executions"]
    assert sum(e["name"] == names[0] for e in running) == 1


def test_given_concurrent_starts_then_exactly_one_wins_and_one_command_is_sent(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from chalicelib.control import channels
    from chalicelib.errors import ConflictError

    serialise_moto(monkeypatch, "update_item")
    api.create("news")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            channels.start_channel(api.ctl, "news")
            outcomes.append("won")
        except ConflictError:
            outcomes.append("409")

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["409"] * 5 + ["won"]
    assert [c for _, c in api.lifecycle.commands] == ["start"]


def test_given_a_delete_before_the_stopped_execution_parked_then_it_self_completes_delete(api: Api) -> None:
    api.running("news")
    api.call("POST", "/channels/news/stop")
    api.execution.call("finalize", "news")
    api.execution.call("set_state", "news", state="STOPPED", expect=["STOPPING"])
    assert api.call("DELETE", "/channels/news").status_code == 200  # no token stored yet
    token = api.execution.park("news", "STOPPED")
    assert api.lifecycle.commands[-1] == (token, "delete")
    assert api.lifecycle.stopped == []  # the execution ends itself; nothing is aborted


def test_given_step_functions_throttles_a_start_then_503_and_a_retry_reaches_the_parked_execution(
    api: Api,
) -> None:
    from chalicelib.errors import StoreError

    api.create("news")
    real_send = api.lifecycle.send_command
    calls: list[str] = []

    def flaky(token: str, command: str) -> None:
        calls.append(token)
        if len(calls) == 1:
            raise StoreError("could not reach the channel's lifecycle (ThrottlingException)")
        real_send(token, command)

    api.lifecycle.send_command = flaky  # type: ignore[method-assign]
    assert api.call("POST", "/channels/news/start").status_code == 503
    assert state(api) == "IDLE"
    assert api.call("POST", "/channels/news/start").status_code == 202
    assert calls == ["token-news-1", "token-news-1"]  # the token survived the rollback
    assert api.lifecycle.commands == [("token-news-1", "start")]
