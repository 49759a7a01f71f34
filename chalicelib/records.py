"""The DynamoDB single-table layout shared by the control plane and the pipeline.

One table, pk = "CH#{channel}", sk = one of:
  "META"                        the channel record (ChannelRecord)
  "RUN#{run:06d}"               one run of the channel (a start): its clock base and facts (pipeline)
  "SEG#{run:06d}#{seq:012d}"    one source chunk / output segment of a run (owned by chalicelib.pipeline)
  "BRK#{break_id}"              one ad break (owned by chalicelib.control, read by the packager)
  "PUB"                         the packager's publish state (owned by chalicelib.pipeline)
Powertools Idempotency records use pk = "IDEM#...", sk = "IDEM" in the same table.

Channel and break ids are validated here, once, before they reach a key, a path or a URL.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import ValidationError

ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# Lifecycle states (see statemachines/channel.asl.json).
CREATING, IDLE, STARTING, RUNNING, STOPPING, STOPPED, DELETED, ERROR = (
    "CREATING", "IDLE", "STARTING", "RUNNING", "STOPPING", "STOPPED", "DELETED", "ERROR",
)
STATES = (CREATING, IDLE, STARTING, RUNNING, STOPPING, STOPPED, DELETED, ERROR)
INGEST_STATES = frozenset({STARTING, RUNNING})  # uploads are accepted only here


def validate_id(value: object, what: str = "channel id") -> str:
    """Lower-case DNS-label style ids: safe in S3 keys, URLs, DynamoDB keys and execution names."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value):  # match() would let a trailing \n through
        shown = repr(value)[:80]
        raise ValidationError(
            f"invalid {what} {shown}: use 1-63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def channel_pk(channel_id: str) -> str:
    return f"CH#{validate_id(channel_id)}"


MAX_SEQ = 10**12  # chunk numbers are 0 .. 10^12 - 1 (ingest keys have 8 to 12 digits)
MAX_RUN = 10**6


def check_seq(seq: object) -> int:
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < MAX_SEQ:
        raise ValidationError(f"invalid segment sequence {seq!r}: use 0 .. {MAX_SEQ - 1}")
    return seq


def check_run(run: object) -> int:
    if not isinstance(run, int) or isinstance(run, bool) or not 0 <= run < MAX_RUN:
        raise ValidationError(f"invalid run number {run!r}")
    return run


def segment_sk(run: int, seq: int) -> str:
    return f"SEG#{check_run(run):06d}#{check_seq(seq):012d}"


def run_sk(run: int) -> str:
    return f"RUN#{check_run(run):06d}"


def run_name(run: int) -> str:
    """The run as it appears in segment URLs: r1, r2, ..."""
    return f"r{check_run(run)}"


def break_sk(break_id: str) -> str:
    return f"BRK#{validate_id(break_id, 'ad break id')}"


META, PUB = "META", "PUB"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class ChannelRecord:
    """sk = META. Numbers are stored as DynamoDB numbers (Decimal on read; convert at the edge)."""

    id: str
    name: str = ""
    state: str = CREATING
    ladder: str = "default"
    # HLS ad-marker dialects (comma-separated): daterange, elemental, scte35_enhanced, interstitials;
    # the older "cue" (= scte35_enhanced) and "both" (= scte35_enhanced,daterange) still work.
    marker_style: str = "both"
    dash_ad_markers: str = "binary"  # DASH EventStream: "binary" (2014:xml+bin) | "xml" (2013:xml)
    dash_period_triggers: str = "none"  # "avails": a new DASH Period at each ad break
    ad_asset_uri: str = ""  # interstitials: the ad's HLS asset URL (X-ASSET-URI)
    ad_asset_list: str = ""  # interstitials: an asset-list URL (X-ASSET-LIST), instead of ad_asset_uri
    scte_filter: list[str] = field(default_factory=list)  # source SCTE-35 types that become breaks ([]: default)
    segment_duration: float = 2.0
    live_window: float = 30.0
    dvr_window: float = 7200.0
    fanout: str = "chunk"  # "chunk" (one job per chunk) | "rendition" (one job per chunk x rendition)
    # What stands in for a chunk that is missing, late or corrupt: "slate" (real media, in HLS and
    # DASH) or "gap" (the same slate media, marked EXT-X-GAP in HLS for players that skip it).
    missing_media: str = "slate"
    # Low-latency HLS: the encoder uploads each segment as parts of this many seconds (0: whole chunks,
    # no LL playlists). chalicelib.media.parts.
    part_duration: float = 0.0
    slate_wait: float = 0.0  # seconds a ready later chunk waits for a missing one (0: the stage's, one segment)
    # seconds past its due time a never-received chunk waits before its slot is slated with nothing later
    # ready (input loss; 0: the stage's INPUT_LOSS_WAIT, by default 1.5 segment durations; negative: never,
    # a later chunk must be ready)
    input_loss_wait: float = 0.0
    # "s{seq % SEEN_SLOTS}" -> "run:seq": uploads whose event reached ingest, written before the probe
    # (pipeline.store.note_seen), so the packager knows a chunk is in before it is recorded.
    seen: dict[str, str] = field(default_factory=dict)
    run_no: int = 0  # runs started so far; the current run's number (set by every start)
    last_run: int = 0  # the run of the newest chunk (last_seq counts within it)
    late_chunks: int = 0  # chunks dropped because they came after their slot was published
    created_at: str = ""  # ISO-8601 UTC
    updated_at: str = ""
    started_at: str = ""  # when the current run started (RUNNING)
    availability_start: str = ""  # ISO; PDT of media time 0 of the current run
    last_segment_at: str = ""  # wall time the newest chunk arrived (watchdog input)
    last_seq: int = -1
    execution_arn: str = ""
    task_token: str = ""  # the lifecycle execution waiting for a command
    error: str = ""  # last error the API reports (ERROR state or last rejected chunk)
    errors: int = 0  # count of rejected/failed chunks
    version: int = 0  # optimistic concurrency for META updates
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def current_run(self) -> int:
        """The run chunks belong to now (1 before the first start has counted one)."""
        return max(1, self.run_no)

    def to_item(self) -> dict[str, Any]:
        item = {k: v for k, v in asdict(self).items() if v != "" and v != {} and v != []}
        item["pk"], item["sk"] = channel_pk(self.id), META
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ChannelRecord:
        known = set(cls.__dataclass_fields__)
        data: dict[str, Any] = {}
        for k, v in item.items():
            if k not in known:
                continue
            f = cls.__dataclass_fields__[k]
            if f.type in ("int",):
                v = int(v)
            elif f.type in ("float",):
                v = float(v)
            data[k] = v
        return cls(**data)
