"""Pure pieces of the control plane: body parsing, auth, error mapping, break conversion."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.control import auth
from chalicelib.control.adbreaks import to_timeline_breaks
from chalicelib.control.http import error_response, status_for
from chalicelib.control.models import CreateAdBreak, CreateChannel, PatchChannel, parse_body
from chalicelib.errors import (
    ConcurrentUpdateError,
    ConflictError,
    NotFoundError,
    StateTransitionError,
    StoreError,
    UnauthorizedError,
    ValidationError,
)


def test_given_an_empty_body_then_defaults_apply_where_every_field_is_optional() -> None:
    assert parse_body(PatchChannel, b"").changes() == {}
    with pytest.raises(ValidationError, match="field 'id': Field required"):
        parse_body(CreateChannel, b"")


def test_given_several_bad_fields_then_every_one_is_named() -> None:
    with pytest.raises(ValidationError) as e:
        parse_body(CreateAdBreak, b'{"duration": -1, "kind": "x", "start": "2026-01-01T00:00:00"}')
    msg = str(e.value)
    assert "field 'duration'" in msg and "field 'kind'" in msg and "start needs a timezone" in msg


@pytest.mark.parametrize("raw", [b'{"duration": Infinity}', b'{"duration": 1e999}', b'{"duration": null}'])
def test_given_non_finite_or_null_durations_then_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError, match="duration"):
        parse_body(CreateAdBreak, raw)


def test_given_invalid_json_then_the_message_says_so() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_body(CreateChannel, b'{"id": ')


@pytest.mark.parametrize(
    ("error", "code"),
    [(ValidationError("x"), 400), (UnauthorizedError("x"), 401), (NotFoundError("x"), 404),
     (ConflictError("x"), 409), (StateTransitionError("x"), 409), (StoreError("x"), 503),
     (ConcurrentUpdateError("x"), 503)],
)
def test_domain_errors_map_to_one_http_status_each(error: Exception, code: int) -> None:
    assert status_for(error) == code  # type: ignore[arg-type]
    resp = error_response(error)  # type: ignore[arg-type]
    assert resp.status_code == code
    assert resp.body == {"error": type(error).__name__, "message": "x"}


def test_given_api_keys_then_only_a_listed_key_passes() -> None:
    keys = frozenset({"k-one", "k-two"})
    auth.check(keys, {"x-api-key": "k-two"}, {})
    with pytest.raises(UnauthorizedError, match="missing"):
        auth.check(keys, {}, {})
    with pytest.raises(UnauthorizedError, match="invalid"):
        auth.check(keys, {"x-api-key": "k-one "}, {})


def test_given_iam_mode_then_an_event_needs_an_iam_caller() -> None:
    auth.check(frozenset(), {}, {"identity": {"userArn": "arn:aws:iam::1:user/op"}})
    with pytest.raises(UnauthorizedError, match="IAM"):
        auth.check(frozenset(), {"x-api-key": "anything"}, {"identity": {"sourceIp": "1.2.3.4"}})


def test_break_items_as_read_from_dynamodb_become_timeline_breaks_in_start_order() -> None:
    items = [
        {"id": "b2", "splice_event_id": Decimal(2), "start": "2026-03-01T12:05:00.000Z", "duration": Decimal("30"),
         "kind": "time_signal", "state": "returned", "returned_at": "2026-03-01T12:05:10.000Z", "source": "api"},
        {"id": "b1", "splice_event_id": Decimal(1), "start": "2026-03-01T12:00:00.000Z", "duration": Decimal("60.5"),
         "kind": "splice_insert", "state": "cancelled", "source": "api"},
    ]
    b1, b2 = to_timeline_breaks(items)
    assert (b1.id, b1.splice_event_id, b1.duration, b1.cancelled, b1.returned_at) == ("b1", 1, 60.5, True, None)
    assert b2.kind == "time_signal" and not b2.cancelled
    assert b2.returned_at == datetime(2026, 3, 1, 12, 5, 10, tzinfo=UTC)
    assert isinstance(b2.splice_event_id, int) and isinstance(b2.duration, float)


def test_input_gap_metric_is_emitted_as_embedded_metric_format_for_the_alarm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from chalicelib.control.adapters import EmfMetrics

    EmfMetrics("SlipstreamTest", {"service": "slipstream", "stage": "prod"}).input_gap("news", 12.5)
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "InputGapSeconds" in ln]
    emf = json.loads(line)
    assert emf["InputGapSeconds"] == [12.5]
    assert (emf["channel"], emf["service"], emf["stage"]) == ("news", "slipstream", "prod")
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    # One time series per channel and stage: the per-channel alarm's SCHEMA(..., channel, service, stage).
    assert directive["Namespace"] == "SlipstreamTest"
    assert [sorted(d) for d in directive["Dimensions"]] == [["channel", "service", "stage"]]
