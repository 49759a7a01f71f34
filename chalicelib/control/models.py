"""Request bodies: pydantic v2 models, strict and closed, so a wrong field is named in the 400.

Bodies are parsed from the raw JSON text (`model_validate_json`), which rejects NaN/Infinity,
numbers sent as strings and unknown fields, and reports the path of every bad field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from ..errors import ValidationError
from ..media import scte35
from ..media.adbreaks import check_marker_style
from ..media.ladder import LADDERS
from ..records import validate_id

MAX_BREAK_SECONDS = 3600.0  # an hour-long break is already absurd; bigger is a typo
MIN_BREAK_SECONDS = 0.1
AUTO_BREAK_ID = re.compile(r"brk-\d+")  # the form of ids derived from the splice event id
MAX_INGEST_URLS = 1000
MAX_NAME = 200


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _ladder(value: str | None) -> str | None:
    if value is not None and value not in LADDERS:
        raise ValueError(f"unknown ladder {value!r}; choose one of {sorted(LADDERS)}")
    return value


def _id(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        return validate_id(value, what)
    except ValidationError as e:
        raise ValueError(str(e)) from None


class LowLatency(_Body):
    """Low-Latency HLS: the encoder uploads each segment as parts of `part_duration` seconds (0: off)."""

    part_duration: float = Field(0.5, ge=0.0, le=2.0)


def _marker_style(value: str | list[str] | None) -> str | None:
    """One dialect or several (a list, or comma-separated): daterange, elemental, scte35_enhanced,
    interstitials; the older "cue" and "both" are kept and mean what they meant."""
    if value is None:
        return None
    try:
        return check_marker_style(value)
    except ValidationError as e:
        raise ValueError(str(e)) from None


def _asset_url(value: str | None) -> str | None:
    if value is None or value == "":
        return value
    if not re.fullmatch(r"https?://[^\s\"]+|/[^\s\"]*", value):
        raise ValueError("must be an http(s) URL or an absolute path, without spaces or double quotes")
    return value


def _scte_filter(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    try:
        return list(scte35.check_filter(value))
    except ValidationError as e:
        raise ValueError(str(e)) from None


class _MarkerFields(_Body):
    # HLS ad-marker dialect(s) and the other downstream-facing ad settings (issue #11).
    marker_style: str | list[str] | None = None
    dash_ad_markers: Literal["binary", "xml"] | None = None
    dash_period_triggers: Literal["none", "avails"] | None = None
    ad_asset_uri: str | None = Field(None, max_length=2000)
    ad_asset_list: str | None = Field(None, max_length=2000)
    scte_filter: list[str] | None = Field(None, max_length=len(scte35.SCTE_FILTERS))

    _check_markers = field_validator("marker_style")(_marker_style)
    _check_assets = field_validator("ad_asset_uri", "ad_asset_list")(_asset_url)
    _check_filter = field_validator("scte_filter")(_scte_filter)


class CreateChannel(_MarkerFields):
    id: str
    name: str = Field("", max_length=MAX_NAME)
    ladder: str | None = None  # default: the stage's LADDER
    segment_duration: float | None = Field(None, ge=0.5, le=12.0)
    live_window: float | None = Field(None, ge=6.0, le=3600.0)
    dvr_window: float | None = Field(None, ge=6.0, le=86400.0)
    fanout: Literal["chunk", "rendition"] = "chunk"
    low_latency: LowLatency | None = None
    # What stands in for a missing, late or corrupt chunk (the slate, in HLS and DASH; "gap" also marks
    # it EXT-X-GAP in HLS), how long a ready later chunk waits for it (default: one segment), and how long
    # past its due time a chunk that never came waits with nothing later ready (input loss; off unless set).
    missing_media: Literal["slate", "gap"] = "slate"
    slate_wait: float | None = Field(None, ge=0.2, le=120.0)
    input_loss_wait: float | None = Field(None, ge=0.0, le=120.0)  # 0: off

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        return _id(v, "channel id") or v

    _check_ladder = field_validator("ladder")(_ladder)


RESET_BY_NULL = frozenset({"input_loss_wait"})  # PATCH fields whose null means "the stage's value" (0 means off)


class PatchChannel(_MarkerFields):
    """Fields that can change after creation. Encoding fields only while the channel is not live."""

    name: str | None = Field(None, max_length=MAX_NAME)
    ladder: str | None = None
    segment_duration: float | None = Field(None, ge=0.5, le=12.0)
    live_window: float | None = Field(None, ge=6.0, le=3600.0)
    dvr_window: float | None = Field(None, ge=6.0, le=86400.0)
    fanout: Literal["chunk", "rendition"] | None = None
    low_latency: LowLatency | None = None
    missing_media: Literal["slate", "gap"] | None = None
    slate_wait: float | None = Field(None, ge=0.2, le=120.0)
    input_loss_wait: float | None = Field(None, ge=0.0, le=120.0)  # 0: off

    _check_ladder = field_validator("ladder")(_ladder)

    def changes(self) -> dict[str, object]:
        out = {k: v for k, v in self.model_dump().items() if v is not None}
        for k in RESET_BY_NULL & self.model_fields_set:  # given as null: back to the stage's value
            if getattr(self, k) is None:
                out[k] = None
        if "low_latency" in out:  # stored flat on the channel record
            out["part_duration"] = float(out.pop("low_latency")["part_duration"])
        return out


# Changing these mid-run would change the ladder or timing of segments already advertised.
ENCODING_FIELDS = frozenset({"ladder", "segment_duration", "fanout", "part_duration"})


class IngestUrlsRequest(_Body):
    first_seq: int = Field(0, ge=0, lt=10**12)
    count: int = Field(1, ge=1, le=MAX_INGEST_URLS)
    extension: Literal["ts", "mp4"] = "ts"
    parts: int = Field(0, ge=0, le=10)  # low-latency: URLs for {seq}.{part}.{ext}, parts 0..parts-1 of each seq


class CreateAdBreak(_Body):
    # At least one 90 kHz-tick-meaningful tenth of a second: smaller values are typos, and would
    # underflow DynamoDB's number type (a 503 the client would retry forever).
    duration: float = Field(ge=MIN_BREAK_SECONDS, le=MAX_BREAK_SECONDS)
    start: datetime | None = None  # None: now. Must carry a timezone.
    kind: Literal["splice_insert", "time_signal"] = "splice_insert"
    id: str | None = None  # default: derived from the splice event id

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str | None) -> str | None:
        if v is not None and AUTO_BREAK_ID.fullmatch(v):
            # Reserved for ids derived from the splice event id: taking one would make a later
            # automatic id collide, blocking every break without an explicit id.
            raise ValueError(f"ids like {v!r} (brk-<number>) are reserved for automatic ids; choose another")
        return _id(v, "ad break id")

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.utcoffset() is None:
            raise ValueError("start needs a timezone, e.g. 2026-01-01T12:00:00Z")
        if v is not None and not 2000 <= v.year <= 9000:  # also keeps astimezone() from overflowing
            raise ValueError("start must be a real date (year 2000-9000)")
        return v


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], raw: bytes | str | None) -> M:
    """Validate a JSON body; every problem becomes one domain ValidationError naming the fields."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    if not text.strip():
        text = "{}"
    _no_duplicate_keys(text)
    try:
        return model.model_validate_json(text)
    except PydanticValidationError as e:
        raise ValidationError(describe(e)) from None


def _no_duplicate_keys(text: str) -> None:
    """`{"duration": 30, "duration": 3000}` is ambiguous (parsers disagree on which wins): refuse it."""
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in items:
            if k in seen:
                raise ValidationError(f"body: duplicate key {k!r} (each field may appear once)")
            seen[k] = v
        return seen

    try:
        json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        return  # not JSON at all: pydantic names the problem


def describe(e: PydanticValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "json_invalid":
            parts.append(f"body is not valid JSON ({err.get('ctx', {}).get('error', msg)})")
        elif err["type"] == "model_type" or not where:
            parts.append(f"body: {msg}")
        else:
            parts.append(f"field '{where}': {msg}")
    return "; ".join(parts)
