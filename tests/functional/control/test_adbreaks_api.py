"""Ad breaks through the API: scheduling, refusal of nonsense, cancel vs early return, republish."""

from __future__ import annotations

from datetime import timedelta

import pytest
from control_harness import Api, serialise_moto

from chalicelib.control.adbreaks import to_timeline_breaks
from chalicelib.records import iso

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def test_given_a_running_channel_when_a_break_starts_now_then_201_and_manifests_republish(api: Api) -> None:
    api.running("news")
    resp = api.call("POST", "/channels/news/ad-breaks", {"duration": 30})
    assert resp.status_code == 201
    body = resp.json_body
    assert body["start"] == iso(api.clock.now)
    assert (body["duration"], body["kind"], body["state"], body["phase"]) == (30.0, "splice_insert", "scheduled",
                                                                             "active")
    assert body["republished"] is True
    assert api.recorder.republished == [("news", f"ad break {body['id']} created")]


def test_given_several_breaks_then_splice_event_ids_are_unique_and_increasing(api: Api) -> None:
    api.running("news")
    ids = []
    for i in range(3):
        start = api.clock.now + timedelta(minutes=5 * (i + 1))
        resp = api.call("POST", "/channels/news/ad-breaks", {"duration": 60, "start": iso(start),
                                                             "kind": "time_signal"})
        assert resp.status_code == 201, resp.body
        ids.append(resp.json_body["splice_event_id"])
    assert ids == sorted(set(ids)) and len(ids) == 3
    listed = api.call("GET", "/channels/news/ad-breaks").json_body["ad_breaks"]
    assert [b["splice_event_id"] for b in listed] == ids
    assert {b["phase"] for b in listed} == {"pending"}


def test_given_an_explicit_id_twice_then_409_and_the_event_id_is_not_burnt(api: Api) -> None:
    api.running("news")
    later = iso(api.clock.now + timedelta(minutes=10))
    first = api.call("POST", "/channels/news/ad-breaks", {"duration": 10, "id": "promo"})
    dup = api.call("POST", "/channels/news/ad-breaks", {"duration": 10, "id": "promo", "start": later})
    assert first.status_code == 201 and dup.status_code == 409
    nxt = api.call("POST", "/channels/news/ad-breaks", {"duration": 10, "start": later})
    assert nxt.json_body["splice_event_id"] == first.json_body["splice_event_id"] + 1


def test_given_an_overlapping_break_then_409(api: Api) -> None:
    api.running("news")
    api.call("POST", "/channels/news/ad-breaks", {"duration": 60})
    resp = api.call("POST", "/channels/news/ad-breaks",
                    {"duration": 10, "start": iso(api.clock.now + timedelta(seconds=30))})
    assert resp.status_code == 409 and "overlaps" in resp.json_body["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration": 0}, "duration"),
        ({"duration": -5}, "duration"),
        ({"duration": 1e9}, "duration"),
        ({"duration": 3600.5}, "duration"),
        ({"duration": "30"}, "duration"),
        ({"duration": True}, "duration"),
        ({}, "duration"),
        ({"duration": 30, "kind": "splice_null"}, "kind"),
        ({"duration": 30, "start": "tomorrow"}, "start"),
        ({"duration": 30, "start": "2026-03-01T12:30:00"}, "start"),
        ({"duration": 30, "start": "2020-01-01T00:00:00Z"}, "start"),
        ({"duration": 30, "start": "2026-04-01T00:00:00Z"}, "start"),
        ({"duration": 30, "id": "../../x"}, "id"),
        ({"duration": 30, "id": "evil\n"}, "id"),  # would split the DATERANGE line
        ({"duration": 30, "id": "brk-2"}, "id"),  # reserved: would block the next automatic id
        ({"duration": 1e-200}, "duration"),  # underflowed DynamoDB's number type: was a retryable 503
        ({"duration": 30, "start": "0001-01-01T00:00:00+01:00"}, "start"),  # overflowed astimezone: was a 500
        ({"duration": 30, "start": "9999-12-31T23:59:59-01:00"}, "start"),
        ({"duration": 30, "extra": 1}, "extra"),
    ],
)
def test_given_a_bad_break_body_then_400_names_the_field_and_nothing_is_scheduled(
    api: Api, body: dict[str, object], field: str
) -> None:
    api.running("news")
    resp = api.call("POST", "/channels/news/ad-breaks", body)
    assert resp.status_code == 400, resp.body
    assert field in resp.json_body["message"]
    assert api.call("GET", "/channels/news/ad-breaks").json_body["ad_breaks"] == []
    assert api.recorder.republished == []


def test_given_nan_duration_then_400(api: Api) -> None:
    api.running("news")
    resp = api.call("POST", "/channels/news/ad-breaks", raw=b'{"duration": NaN}')
    assert resp.status_code == 400 and "duration" in resp.json_body["message"]


def test_given_a_stopping_channel_then_breaks_are_refused_with_409(api: Api) -> None:
    api.running("news")
    api.call("POST", "/channels/news/stop")
    resp = api.call("POST", "/channels/news/ad-breaks", {"duration": 30})
    assert resp.status_code == 409 and "STOPPING" in resp.json_body["message"]


def test_given_a_pending_break_when_deleted_then_cancelled_and_invisible_to_the_packager(api: Api) -> None:
    api.running("news")
    start = api.clock.now + timedelta(minutes=1)
    brk = api.call("POST", "/channels/news/ad-breaks", {"duration": 30, "start": iso(start)}).json_body
    resp = api.call("DELETE", f"/channels/news/ad-breaks/{brk['id']}")
    assert resp.status_code == 200
    assert (resp.json_body["state"], resp.json_body["phase"]) == ("cancelled", "cancelled")
    assert api.recorder.republished[-1] == ("news", f"ad break {brk['id']} cancelled")
    [tb] = to_timeline_breaks(api.ctl.store.list_breaks("news"))
    assert tb.cancelled and tb.returned_at is None
    again = api.call("DELETE", f"/channels/news/ad-breaks/{brk['id']}")
    assert again.status_code == 409 and "already cancelled" in again.json_body["message"]


def test_given_an_active_break_when_deleted_then_it_returns_early_at_now(api: Api) -> None:
    api.running("news")
    brk = api.call("POST", "/channels/news/ad-breaks", {"duration": 60, "id": "b1"}).json_body
    api.clock.advance(20)
    resp = api.call("DELETE", "/channels/news/ad-breaks/b1")
    assert resp.json_body["state"] == "returned"
    assert resp.json_body["returned_at"] == iso(api.clock.now)
    [tb] = to_timeline_breaks(api.ctl.store.list_breaks("news"))
    assert not tb.cancelled and tb.returned_at == api.clock.now
    assert tb.splice_event_id == brk["splice_event_id"] and tb.duration == 60.0


def test_given_an_ended_break_when_deleted_then_409(api: Api) -> None:
    api.running("news")
    api.call("POST", "/channels/news/ad-breaks", {"duration": 10, "id": "b1"})
    api.clock.advance(11)
    assert api.call("DELETE", "/channels/news/ad-breaks/b1").status_code == 409


@pytest.mark.parametrize(("path", "code"), [("/channels/news/ad-breaks/nope", 404),
                                            ("/channels/news/ad-breaks/BAD", 400),
                                            ("/channels/ghost/ad-breaks/b1", 404)])
def test_given_unknown_or_hostile_break_ids_then_404_or_400(api: Api, path: str, code: int) -> None:
    api.running("news")
    assert api.call("DELETE", path).status_code == code


def test_given_republish_fails_then_the_break_is_still_committed_and_the_reply_says_so(api: Api) -> None:
    api.running("news")
    api.recorder.fail_republish = True
    resp = api.call("POST", "/channels/news/ad-breaks", {"duration": 30})
    assert resp.status_code == 201 and resp.json_body["republished"] is False
    assert len(api.call("GET", "/channels/news/ad-breaks").json_body["ad_breaks"]) == 1


def test_given_two_overlapping_breaks_requested_at_once_then_one_is_scheduled_and_one_gets_409(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlapping SCTE-35 OUT/IN pairs would reach the manifests if both requests passed the
    schedule check before either wrote. Both threads read the schedule before either commits."""
    import threading

    from chalicelib.control import adbreaks, models
    from chalicelib.errors import ConflictError

    serialise_moto(monkeypatch, "transact_write_items")
    api.running("news")
    listed = threading.Barrier(2)
    real_list = api.ctl.store.list_breaks
    first_round: set[int] = set()

    def list_then_wait(channel_id: str) -> list[dict[str, object]]:
        out = real_list(channel_id)
        me = threading.get_ident()
        if me not in first_round:  # both threads' first schedule reads happen before either writes
            first_round.add(me)
            listed.wait(timeout=10)
        return out

    monkeypatch.setattr(api.ctl.store, "list_breaks", list_then_wait)
    outcomes: list[str] = []

    def insert(duration: float) -> None:
        body = models.CreateAdBreak.model_validate({"duration": duration})
        try:
            adbreaks.create_ad_break(api.ctl, "news", body)
            outcomes.append("scheduled")
        except ConflictError:
            outcomes.append("409")

    threads = [threading.Thread(target=insert, args=(d,)) for d in (30.0, 40.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["409", "scheduled"]
    assert len(real_list("news")) == 1
