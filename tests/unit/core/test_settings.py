from __future__ import annotations

import pytest

from chalicelib.errors import ValidationError
from chalicelib.settings import Settings

BASE = {"TABLE_NAME": "t", "INGEST_BUCKET": "in", "ORIGIN_BUCKET": "out"}


def test_given_minimal_env_then_defaults_are_streaming_sane() -> None:
    s = Settings.from_env(BASE)
    assert s.segment_duration == 2.0 and s.live_window == 30.0 and s.distribution_id == ""
    assert s.api_keys == frozenset()


def test_given_missing_names_then_error_lists_them() -> None:
    with pytest.raises(ValidationError, match="TABLE_NAME, ORIGIN_BUCKET"):
        Settings.from_env({"INGEST_BUCKET": "in"})


@pytest.mark.parametrize("value", ["abc", "0", "100", "nan"])
def test_given_bad_segment_duration_then_rejected(value: str) -> None:
    with pytest.raises(ValidationError, match="SEGMENT_DURATION"):
        Settings.from_env({**BASE, "SEGMENT_DURATION": value})


def test_api_keys_are_a_comma_list_and_base_url_loses_its_trailing_slash() -> None:
    s = Settings.from_env({**BASE, "API_KEYS": "a,b,", "PLAYBACK_BASE_URL": "https://cdn.example/"})
    assert s.api_keys == {"a", "b"} and s.playback_base_url == "https://cdn.example"


@pytest.mark.parametrize(("raw", "want"), [("", None), ("4.5", 4.5), ("0", 0.0), ("off", 0.0)])
def test_input_loss_wait_is_seconds_or_off(raw: str, want: float | None) -> None:
    assert Settings.from_env({**BASE, "INPUT_LOSS_WAIT": raw}).input_loss_wait == want


def test_given_an_input_loss_wait_too_short_to_tell_a_late_chunk_then_rejected() -> None:
    with pytest.raises(ValidationError, match="INPUT_LOSS_WAIT"):
        Settings.from_env({**BASE, "INPUT_LOSS_WAIT": "0.1"})
