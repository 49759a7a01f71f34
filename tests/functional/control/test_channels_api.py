"""Channel CRUD through the HTTP API: what an operator's client sees, including every refusal."""

from __future__ import annotations

import pytest
from control_harness import Api

pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer")


def test_given_a_new_id_when_created_then_201_with_stage_defaults_and_a_lifecycle_execution(api: Api) -> None:
    resp = api.call("POST", "/channels", {"id": "news", "name": "News 24"})
    assert resp.status_code == 201
    body = resp.json_body
    assert body["id"] == "news" and body["name"] == "News 24"
    assert body["state"] == "CREATING"
    assert body["ladder"] == "test" and body["segment_duration"] == 2.0  # from the local stage
    assert "task_token" not in body and "execution_arn" not in body
    [(name, channel, resume)] = api.lifecycle.started
    assert channel == "news" and not resume
    assert name.startswith("news-") and len(name) <= 80


def test_given_the_execution_started_but_its_arn_write_fails_then_still_201_and_a_retry_is_not_needed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 here would be a lie: the channel exists and its lifecycle runs (a retry would get 409)."""
    from chalicelib.errors import StoreError

    real_update = api.ctl.store.update

    def failing_update(channel_id: str, fields: dict[str, object], **kw: object) -> object:
        if "execution_arn" in fields:
            raise StoreError("channel store unavailable (ProvisionedThroughputExceededException)")
        return real_update(channel_id, fields, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(api.ctl.store, "update", failing_update)
    resp = api.call("POST", "/channels", {"id": "news"})
    assert resp.status_code == 201 and resp.json_body["state"] == "CREATING"
    monkeypatch.undo()
    api.execution.park("news", "IDLE")  # the execution carries on by itself
    assert api.call("GET", "/channels/news").json_body["state"] == "IDLE"


def test_given_the_execution_parked_when_read_then_idle(api: Api) -> None:
    api.create("news")
    assert api.call("GET", "/channels/news").json_body["state"] == "IDLE"


def test_given_channels_when_listed_then_sorted_and_deleted_ones_hidden(api: Api) -> None:
    for cid in ("zulu", "alpha", "mid"):
        api.create(cid)
    assert api.call("DELETE", "/channels/mid").status_code == 200
    resp = api.call("GET", "/channels")
    assert [c["id"] for c in resp.json_body["channels"]] == ["alpha", "zulu"]


def test_given_an_existing_id_when_created_again_then_409_and_the_first_is_unchanged(api: Api) -> None:
    api.create("news", name="first")
    resp = api.call("POST", "/channels", {"id": "news", "name": "second"})
    assert resp.status_code == 409
    assert resp.json_body["error"] == "ConflictError"
    assert api.call("GET", "/channels/news").json_body["name"] == "first"


def test_given_a_deleted_id_when_created_again_then_409_because_ids_are_never_reused(api: Api) -> None:
    api.create("news")
    api.call("DELETE", "/channels/news")
    assert api.call("POST", "/channels", {"id": "news"}).status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "../etc"}, "id"),
        ({"id": "CH#x"}, "id"),
        ({"id": "x" * 64}, "id"),
        ({"id": "caf\u00e9"}, "id"),
        ({"id": 42}, "id"),
        ({}, "id"),
        ({"id": "ok", "segment_duration": "2"}, "segment_duration"),
        ({"id": "ok", "segment_duration": -2}, "segment_duration"),
        ({"id": "ok", "segment_duration": 1e9}, "segment_duration"),
        ({"id": "ok", "ladder": "8k"}, "ladder"),
        ({"id": "ok", "marker_style": "scte"}, "marker_style"),
        ({"id": "ok", "surprise": True}, "surprise"),
        ({"id": "ok", "live_window": 6, "segment_duration": 4}, "live_window"),
        ({"id": "ok", "dvr_window": 10, "live_window": 30}, "dvr_window"),
    ],
)
def test_given_a_bad_create_body_when_posted_then_400_names_the_field_and_nothing_is_created(
    api: Api, body: dict[str, object], field: str
) -> None:
    resp = api.call("POST", "/channels", body)
    assert resp.status_code == 400, resp.body
    assert resp.json_body["error"] == "ValidationError"
    assert field in resp.json_body["message"]
    assert api.call("GET", "/channels").json_body["channels"] == []
    assert api.lifecycle.started == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'{"id": "a", "segment_duration": NaN}', b"\xff\xfe"])
def test_given_a_malformed_body_when_posted_then_400_json_error(api: Api, raw: bytes) -> None:
    resp = api.call("POST", "/channels", raw=raw)
    assert resp.status_code == 400
    assert set(resp.json_body) == {"error", "message"}


@pytest.mark.parametrize("path", ["/channels/nope", "/channels/nope/status", "/channels/nope/playback",
                                  "/channels/nope/ad-breaks"])
def test_given_an_unknown_channel_when_read_then_404(api: Api, path: str) -> None:
    resp = api.call("GET", path)
    assert resp.status_code == 404
    assert resp.json_body == {"error": "NotFoundError", "message": "channel 'nope' not found"}


@pytest.mark.parametrize("hostile", ["UPPER", "a..b", "%2e%2e", "-x", "x" * 64, "caf%C3%A9", "CH%23x"])
def test_given_a_hostile_path_id_when_requested_then_400(api: Api, hostile: str) -> None:
    resp = api.call("GET", f"/channels/{hostile}")
    assert resp.status_code == 400
    assert "invalid channel id" in resp.json_body["message"]


def test_given_no_or_a_wrong_api_key_when_calling_then_401_and_nothing_happens(api: Api) -> None:
    no_key = api.client.http.request("POST", "/channels", headers={"content-type": "application/json"},
                                     body=b'{"id": "news"}')
    assert no_key.status_code == 401
    assert no_key.json_body["message"] == "missing x-api-key header"
    wrong = api.call("POST", "/channels", {"id": "news"}, headers={"x-api-key": API_KEY_WRONG})
    assert wrong.status_code == 401 and wrong.json_body["message"] == "invalid API key"
    assert api.call("GET", "/channels").json_body["channels"] == []


API_KEY_WRONG = "local-dev-kez"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/channels"), ("GET", "/channels/x"), ("PATCH", "/channels/x"), ("DELETE", "/channels/x"),
     ("POST", "/channels/x/start"), ("POST", "/channels/x/stop"), ("POST", "/channels/x/ingest-urls"),
     ("GET", "/channels/x/playback"), ("POST", "/channels/x/ad-breaks"), ("GET", "/channels/x/ad-breaks"),
     ("DELETE", "/channels/x/ad-breaks/b"), ("GET", "/channels/x/status"), ("GET", "/openapi.json")],
)
def test_every_route_refuses_a_request_without_a_key(api: Api, method: str, path: str) -> None:
    resp = api.client.http.request(method, path, headers={"content-type": "application/json"}, body=b"{}")
    assert resp.status_code == 401


def test_given_an_idle_channel_when_patched_then_fields_change_and_others_stay(api: Api) -> None:
    api.create("news", name="old", live_window=30)
    resp = api.call("PATCH", "/channels/news", {"name": "new", "marker_style": "daterange", "ladder": "default"})
    assert resp.status_code == 200
    got = api.call("GET", "/channels/news").json_body
    assert (got["name"], got["marker_style"], got["ladder"], got["live_window"]) == (
        "new", "daterange", "default", 30.0)


def test_given_a_running_channel_when_encoding_fields_are_patched_then_409_but_the_name_may_change(
    api: Api,
) -> None:
    api.running("news")
    resp = api.call("PATCH", "/channels/news", {"name": "x", "segment_duration": 4})
    assert resp.status_code == 409
    assert "RUNNING" in resp.json_body["message"]
    got = api.call("GET", "/channels/news").json_body
    assert got["name"] == "" and got["segment_duration"] == 2.0  # nothing half-applied
    assert api.call("PATCH", "/channels/news", {"name": "x"}).status_code == 200


@pytest.mark.parametrize("body", [{"name": 5}, {"live_window": "long"}, {"state": "RUNNING"}, {"id": "other"}])
def test_given_a_bad_patch_when_sent_then_400(api: Api, body: dict[str, object]) -> None:
    api.create("news")
    resp = api.call("PATCH", "/channels/news", body)
    assert resp.status_code == 400
    assert api.call("GET", "/channels/news").json_body["state"] == "IDLE"


def test_given_a_running_channel_when_deleted_then_409(api: Api) -> None:
    api.running("news")
    resp = api.call("DELETE", "/channels/news")
    assert resp.status_code == 409
    assert api.call("GET", "/channels/news").json_body["state"] == "RUNNING"


def test_given_an_idle_channel_when_deleted_then_the_execution_gets_delete_and_the_channel_404s(api: Api) -> None:
    api.create("news")
    assert api.call("DELETE", "/channels/news").json_body == {"id": "news", "state": "DELETED"}
    assert api.lifecycle.commands == [("token-news-1", "delete")]
    assert api.call("GET", "/channels/news").status_code == 404
    assert api.call("DELETE", "/channels/news").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("PATCH", "/channels/ghost", {"name": "x"}), ("DELETE", "/channels/ghost", None),
     ("POST", "/channels/ghost/start", None), ("POST", "/channels/ghost/stop", None),
     ("POST", "/channels/ghost/ingest-urls", {"count": 1}), ("POST", "/channels/ghost/ad-breaks", {"duration": 5}),
     ("DELETE", "/channels/ghost/ad-breaks/b1", None)],
)
def test_given_an_unknown_channel_when_changed_then_404_and_nothing_is_created(
    api: Api, method: str, path: str, body: object
) -> None:
    resp = api.call(method, path, body)
    assert resp.status_code == 404
    assert resp.json_body["error"] == "NotFoundError"
    assert api.call("GET", "/channels").json_body["channels"] == []


def test_given_a_running_channel_when_marker_style_changes_then_manifests_republish_at_once(api: Api) -> None:
    api.running("news")
    assert api.call("PATCH", "/channels/news", {"marker_style": "cue"}).status_code == 200
    assert api.recorder.republished == [("news", "channel changed: marker_style")]
    assert api.call("PATCH", "/channels/news", {"name": "renamed"}).status_code == 200
    assert len(api.recorder.republished) == 1  # a name is not in any manifest


def test_given_input_loss_settings_then_the_channel_keeps_them_and_0_turns_it_off(api: Api) -> None:
    resp = api.call("POST", "/channels", {"id": "news", "input_loss_wait": 4.5})
    assert resp.status_code == 201 and resp.json_body["input_loss_wait"] == 4.5
    assert api.call("GET", "/channels/other").status_code == 404
    assert api.call("POST", "/channels", {"id": "plain"}).json_body["input_loss_wait"] is None  # the stage's
    resp = api.call("PATCH", "/channels/news", {"input_loss_wait": 0})
    assert resp.status_code == 200 and resp.json_body["input_loss_wait"] == 0.0  # off
    resp = api.call("PATCH", "/channels/news", {"input_loss_wait": 0.2})
    assert resp.status_code == 400 and "input_loss_wait" in resp.json_body["message"]
    resp = api.call("PATCH", "/channels/news", {"input_loss_wait": None})  # null: back to the stage's
    assert resp.status_code == 200 and resp.json_body["input_loss_wait"] is None
    assert api.call("GET", "/channels/news").json_body["input_loss_wait"] is None
