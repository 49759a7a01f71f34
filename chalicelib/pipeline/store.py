"""DynamoDB adapter for the pipeline's items (RUN#, SEG#, PUB, and the fields of META it maintains).

Every write that can race is conditional:
- RUN# put: `attribute_not_exists(sk)` -- the first valid chunk of a run fixes its clock base.
- SEG# put: `attribute_not_exists(sk)` -- the first event for (run, seq) wins; a redelivery with the same
  ETag is a duplicate, another ETag a conflict, and a slot the packager already slated (its placeholder
  item has no ETag) refuses the chunk as late.
- SEG# claim: `fill` is set once, to "media" by the worker that is about to upload, or to "slate" by the
  packager; the loser never writes the slot's URL.
- SEG# done: `etag = :etag` -- a transcode of a superseded chunk cannot mark the new one done.
- PUB lease: `lease_until < :now OR attribute_not_exists(lease_until) OR owner = :me` -- one
  packager per channel; `work` counts requests so a lease holder sees work that arrived while it
  rendered and renders again (no update is ever lost).
Items come back with Decimals; they are converted here, at the edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConcurrentUpdateError, ConflictError, StoreError, aws_error_code
from ..media.timeline import Placement
from ..records import META, PUB, ChannelRecord, channel_pk, iso, parse_iso, run_sk, segment_sk
from .assemble import (
    INVALID,
    MEDIA,
    RECEIVED,
    SLATE,
    ChunkState,
    PeriodState,
    PublishState,
    RunInfo,
    RunState,
    SlotClaim,
)


def _dec(x: float) -> Decimal:
    return Decimal(str(round(x, 6)))


def _failed_condition(e: ClientError) -> bool:
    return aws_error_code(e) == "ConditionalCheckFailedException"


def iso_us(t: datetime) -> str:
    """ISO-8601 UTC with microseconds: Period anchors must round-trip exactly."""
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Lease:
    owner: str
    work: int  # the request counter seen when the lease was taken
    version: int  # PUB.version seen when the lease was taken
    pub: dict[str, Any]
    # The previous holder finished (released, or it was us): PUB.written is what the origin holds.
    clean: bool = False

    @property
    def written(self) -> dict[str, str]:
        """Manifest path -> digest of the text the origin holds there, when that is known ({} if not)."""
        return {str(k): str(v) for k, v in (self.pub.get("written") or {}).items()} if self.clean else {}


# RUN# attributes fixed by the run's first valid chunk (a conditional put) and never written again.
RUN_CLOCK = ("pk", "sk", "run", "base", "availability_start", "audio_phase", "started_at")
SEEN_SLOTS = 32  # uploads remembered in META.seen (a ring by seq): far more than are ever being probed at once


def seen_seqs(seen: Mapping[str, str]) -> dict[int, frozenset[int]]:
    """META.seen -> {run: seqs whose upload reached ingest}."""
    out: dict[int, set[int]] = {}
    for value in seen.values():
        run, _, seq = str(value).partition(":")
        if run.isdigit() and seq.isdigit():
            out.setdefault(int(run), set()).add(int(seq))
    return {r: frozenset(s) for r, s in out.items()}


class PipelineStore:
    def __init__(self, table: Any) -> None:
        self._t = table
        # (channel, run) -> RUN_CLOCK facts: immutable once stored (channel ids and run numbers are never
        # reused), so a warm process reads them once instead of once per chunk and per job.
        self._clocks: dict[tuple[str, int], dict[str, Any]] = {}

    # ---- META ----
    def channel(self, channel_id: str) -> ChannelRecord | None:
        item = self._get(channel_id, META)
        return ChannelRecord.from_item(item) if item else None

    def note_seen(self, channel_id: str, run: int, seq: int) -> None:
        """An upload's event reached ingest: remembered before the probe (which may take a second under
        load), so the packager never takes the slot of a chunk that is in for input loss."""
        key = self._key(channel_id, META)
        slot, value = f"s{seq % SEEN_SLOTS}", f"{run}:{seq}"
        try:
            self._update_raw(Key=key, UpdateExpression="SET #seen.#slot = :v",
                             ConditionExpression="attribute_exists(#seen)",
                             ExpressionAttributeNames={"#slot": slot}, ExpressionAttributeValues={":v": value})
            return
        except ClientError as e:
            if not _failed_condition(e):
                raise StoreError(f"META update failed: {e}") from e
        self._update(key, "SET #seen = :m", {":m": {slot: value}},
                     "attribute_exists(#pk) AND attribute_not_exists(#seen)", quiet=True)

    def note_arrival(self, channel_id: str, run: int, seq: int, at: datetime) -> None:
        """Watchdog input: newest arrival time, highest seq of the current run (only ever grows)."""
        key = self._key(channel_id, META)
        try:
            self._update_raw(
                Key=key, UpdateExpression="SET #last_segment_at = :at, #last_seq = :seq, #last_run = :run",
                ConditionExpression="attribute_exists(#pk) AND (attribute_not_exists(#last_run) OR #last_run < :run "
                                    "OR #last_seq < :seq)",
                ExpressionAttributeValues={":at": iso(at), ":seq": seq, ":run": run},
            )
        except ClientError as e:
            if not _failed_condition(e):
                raise StoreError(f"META update failed: {e}") from e
            self._update(key, "SET #last_segment_at = :at", {":at": iso(at)}, "attribute_exists(#pk)",
                         quiet=True)

    def count_error(self, channel_id: str, message: str) -> None:
        self._update(self._key(channel_id, META), "ADD #errors :one SET #e = :msg",
                     {":one": 1, ":msg": message[:500]}, "attribute_exists(#pk)", names={"#e": "error"},
                     quiet=True)

    def count(self, channel_id: str, counter: str, message: str = "") -> None:
        """ADD 1 to a META counter (late_chunks, slate_segments, ...), remembering the last message."""
        expr = f"ADD #{counter} :one" + (f" SET #{counter}_last = :msg" if message else "")
        values: dict[str, Any] = {":one": 1}
        if message:
            values[":msg"] = message[:300]
        self._update(self._key(channel_id, META), expr, values, "attribute_exists(#pk)", quiet=True)

    # ---- RUN# ----
    def run(self, channel_id: str, run: int) -> dict[str, Any] | None:
        return self._get(channel_id, run_sk(run))

    def run_clock(self, channel_id: str, run: int) -> dict[str, Any] | None:
        """The run's clock facts (RUN_CLOCK: base, availability_start, audio_phase, started_at), read once per
        process; None while the run has no valid chunk yet. Not slate_ready: that one changes (use run())."""
        hit = self._clocks.get((channel_id, run))
        if hit is None:
            item = self.run(channel_id, run)
            if item is None:
                return None
            hit = self._remember_clock(channel_id, run, item)
        return dict(hit)

    def _remember_clock(self, channel_id: str, run: int, item: Mapping[str, Any]) -> dict[str, Any]:
        if len(self._clocks) > 4096:  # a process that served very many channels: start over
            self._clocks.clear()
        facts = self._clocks[(channel_id, run)] = {k: item[k] for k in RUN_CLOCK if k in item}
        return facts

    def fix_run(self, channel_id: str, run: int, item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The run's clock facts: ours if we are the first valid chunk, else the stored ones."""
        full = {**self._key(channel_id, run_sk(run)), "run": run, **_to_dynamo(item)}
        try:
            self._t.put_item(Item=full, ConditionExpression="attribute_not_exists(#sk)",
                             ExpressionAttributeNames={"#sk": "sk"})
            self._remember_clock(channel_id, run, full)
            return dict(full), True
        except ClientError as e:
            if not _failed_condition(e):
                raise StoreError(f"RUN put failed: {e}") from e
        stored = self.run(channel_id, run)
        if stored is None:  # pragma: no cover - deleted between the two calls
            raise ConcurrentUpdateError(f"run {run} of {channel_id} vanished")
        self._remember_clock(channel_id, run, stored)
        return stored, False

    def runs(self, channel_id: str) -> dict[int, RunInfo]:
        out: dict[int, RunInfo] = {}
        for it in self._query(channel_id, "RUN#", "RUN#~"):
            out[int(it["run"])] = run_info(it)
        return out

    def set_slate_ready(self, channel_id: str, run: int) -> None:
        self._update(self._key(channel_id, run_sk(run)), "SET #slate_ready = :t", {":t": True},
                     "attribute_exists(#sk)", quiet=True)

    # ---- SEG# ----
    def put_chunk(self, channel_id: str, run: int, seq: int, item: dict[str, Any]) -> str:
        """Record a chunk. Returns "new" or "duplicate"; raises ConflictError on another ETag or a slot
        that was already published as slate."""
        outcome, existing = self.record_chunk(channel_id, run, seq, item)
        if outcome == "late":
            raise ConflictError(f"chunk {seq} came after its slot was published as slate (late)")
        if outcome == "conflict":
            raise ConflictError(
                f"chunk {channel_id}/{seq} was already received with ETag {existing.get('etag')!r}; "
                f"ignoring the upload with ETag {item.get('etag')!r}"
            )
        return outcome

    def record_chunk(self, channel_id: str, run: int, seq: int, item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """put_chunk without raising: ("new", {}), or the outcome and the item already stored: "duplicate"
        (same ETag), "conflict" (another ETag), "late" (a slate placeholder holds the slot)."""
        full = {**self._key(channel_id, segment_sk(run, seq)), "run": run, "seq": seq, **_to_dynamo(item)}
        try:
            self._t.put_item(Item=full, ConditionExpression="attribute_not_exists(#sk)",
                             ExpressionAttributeNames={"#sk": "sk"})
            return "new", {}
        except ClientError as e:
            if not _failed_condition(e):
                raise StoreError(f"segment put failed: {e}") from e
        existing = self._get(channel_id, segment_sk(run, seq)) or {}
        if existing.get("fill") == SLATE and not existing.get("etag"):
            return "late", existing
        if existing.get("etag") == item.get("etag"):
            return "duplicate", existing
        return "conflict", existing

    def update_chunk(self, channel_id: str, run: int, seq: int, etag: str, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(_to_dynamo(fields).values())}
        self._update(self._key(channel_id, segment_sk(run, seq)), f"SET {sets}", {**values, ":etag": etag},
                     "#etag = :etag", names=names)

    def chunk(self, channel_id: str, run: int, seq: int) -> dict[str, Any] | None:
        return self._get(channel_id, segment_sk(run, seq))

    def neighbours(self, channel_id: str, run: int, seq: int) -> dict[int, dict[str, Any]]:
        """The items of seq - 1, seq and seq + 1 in one query (what a transcode needs to place its audio)."""
        lo, hi = max(0, seq - 1), seq + 1
        items = self._query(channel_id, segment_sk(run, lo), segment_sk(run, hi))
        return {int(it["seq"]): it for it in items}

    def claim_media(self, channel_id: str, run: int, seq: int, etag: str, now: datetime) -> bool:
        """Take the slot's URL for this chunk's media (the worker, right before uploading). False: the
        packager has published the slot as slate already."""
        try:
            self._update_raw(
                Key=self._key(channel_id, segment_sk(run, seq)),
                UpdateExpression="SET #fill = :media, #claimed_at = if_not_exists(#claimed_at, :now)",
                ConditionExpression="#etag = :etag AND (attribute_not_exists(#fill) OR #fill = :media)",
                ExpressionAttributeValues={":media": MEDIA, ":now": iso(now), ":etag": etag},
            )
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"media claim failed: {e}") from e

    def claim_slate(self, channel_id: str, claim: SlotClaim, now: datetime, stale_before: datetime) -> bool:
        """Take the slot for slate (the packager). Creates the item when the chunk never arrived. Also
        takes over a media claim older than `stale_before` whose renditions never got done."""
        facts = {":slate": SLATE, ":now": iso(now), ":vs": claim.v_start, ":vd": claim.v_dur, ":as": claim.a_start,
                 ":ad": claim.a_dur, ":why": claim.reason, ":run": claim.run, ":seq": claim.seq,
                 ":media": MEDIA, ":stale": iso(stale_before)}
        try:
            self._update_raw(
                Key=self._key(channel_id, segment_sk(claim.run, claim.seq)),
                UpdateExpression="SET #fill = :slate, #claimed_at = :now, #slate_v_start = :vs, #slate_v_dur = :vd, "
                                 "#slate_a_start = :as, #slate_a_dur = :ad, #slate_reason = :why, #run = :run, "
                                 "#seq = :seq, #received_at = if_not_exists(#received_at, :now)",
                ConditionExpression="attribute_not_exists(#fill) OR #fill = :slate OR "
                                    "(#fill = :media AND #claimed_at < :stale)",
                ExpressionAttributeValues=facts,
            )
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"slate claim failed: {e}") from e

    def record_slate(self, channel_id: str, run: int, seq: int, iframes: Mapping[str, Iterable[Iterable[int]]]) -> None:
        self._update(self._key(channel_id, segment_sk(run, seq)), "SET #slate_iframes = :i",
                     {":i": {k: [list(map(int, x)) for x in v] for k, v in iframes.items()}, ":slate": SLATE},
                     "#fill = :slate")

    def mark_late(self, channel_id: str, run: int, seq: int) -> bool:
        """Flag a chunk as late once; True the first time (so it is counted once)."""
        try:
            self._update_raw(Key=self._key(channel_id, segment_sk(run, seq)), UpdateExpression="SET #late = :t",
                             ConditionExpression="attribute_exists(#sk) AND attribute_not_exists(#late)",
                             ExpressionAttributeValues={":t": True})
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"late mark failed: {e}") from e

    def mark_done(self, channel_id: str, run: int, seq: int, etag: str, renditions: Iterable[str],
                  transcode_seconds: float, facts: Mapping[str, Any], now: datetime) -> None:
        """Renditions finished (a set: a retry after a crash is harmless) plus what they really hold."""
        values: dict[str, Any] = {":r": set(renditions), ":s": _dec(transcode_seconds), ":etag": etag,
                                  ":now": iso(now)}
        sets = ["#done_at = :now"]
        for i, (k, v) in enumerate(_to_dynamo(dict(facts)).items()):
            values[f":x{i}"] = v
            sets.append(f"#{k} = :x{i}")
        self._update(self._key(channel_id, segment_sk(run, seq)),
                     "ADD #done :r, #transcode_seconds :s SET " + ", ".join(sets), values, "#etag = :etag")

    def chunks(self, channel_id: str, run: int, from_seq: int = 0) -> dict[int, ChunkState]:
        items = self._query(channel_id, segment_sk(run, max(0, from_seq)), f"SEG#{run:06d}#~")
        return {int(it["seq"]): chunk_state(it) for it in items}

    def ad_break_items(self, channel_id: str) -> list[dict[str, Any]]:
        return self._query(channel_id, "BRK#", "BRK#~")

    def put_break(self, channel_id: str, item: dict[str, Any]) -> bool:
        """A break from the source's cues (item built by control.adbreaks.source_break_item). False: a
        break with that id exists already (the same cue, recorded by a concurrent ingest)."""
        try:
            self._t.put_item(Item=_to_dynamo(item), ConditionExpression="attribute_not_exists(#sk)",
                             ExpressionAttributeNames={"#sk": "sk"})
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"ad break put failed: {e}") from e

    def update_break(self, channel_id: str, break_id: str, changes: dict[str, Any], expect_state: str) -> bool:
        """Change a break only while it is in `expect_state` (a source return or cancel); False otherwise."""
        from ..records import break_sk

        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(changes)))
        names = {f"#f{i}": k for i, k in enumerate(changes)}
        values = {f":v{i}": v for i, v in enumerate(_to_dynamo(changes).values())}
        try:
            self._update_raw(Key=self._key(channel_id, break_sk(break_id)), UpdateExpression=f"SET {sets}",
                             ConditionExpression="attribute_exists(#sk) AND #state = :expect",
                             ExpressionAttributeNames=names,
                             ExpressionAttributeValues={**values, ":expect": expect_state})
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"ad break update failed: {e}") from e

    # ---- PUB ----
    def pub(self, channel_id: str) -> dict[str, Any]:
        return self._get(channel_id, PUB) or {}

    def request_work(self, channel_id: str) -> None:
        self._update(self._key(channel_id, PUB), "ADD #work :one", {":one": 1})

    def acquire(self, channel_id: str, owner: str, now: float, ttl: float, *, request: bool = False) -> Lease | None:
        """Take the channel's lease. `request`: also count one request of work in the same write (a free
        lease is the common case: one round trip instead of request_work + acquire). When the lease is
        taken, the write changed nothing, so the caller then does request_work and tries once more."""
        values: dict[str, Any] = {":me": owner, ":until": _dec(now + ttl), ":now": _dec(now)}
        expr = "SET #lease_owner = :me, #lease_until = :until"
        if request:
            expr += " ADD #work :one"
            values[":one"] = 1
        try:
            # ALL_OLD: whether the lease was free (released) or expired tells whether PUB.written can be
            # trusted; the new item is the old one plus exactly what this update set.
            resp = self._update_raw(
                Key=self._key(channel_id, PUB),
                UpdateExpression=expr,
                ConditionExpression="attribute_not_exists(#lease_until) OR #lease_until < :now OR #lease_owner = :me",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except ClientError as e:
            if _failed_condition(e):
                return None
            raise StoreError(f"lease acquire failed: {e}") from e
        old = dict(resp.get("Attributes") or {})
        clean = "lease_until" not in old or old.get("lease_owner") == owner
        item = {**old, **self._key(channel_id, PUB), "lease_owner": owner, "lease_until": values[":until"]}
        if request:
            item["work"] = int(old.get("work", 0)) + 1
        return Lease(owner, int(item.get("work", 0)), int(item.get("version", 0)), item, clean)

    def commit(self, channel_id: str, lease: Lease, state: PublishState, extra: dict[str, Any]) -> int:
        """Record what was published; only while we still hold the lease. Returns the new version."""
        values: dict[str, Any] = {":me": lease.owner, ":v": lease.version, ":v1": lease.version + 1,
                                  **{f":s{i}": v for i, v in enumerate(publish_item(state).values())}}
        sets = ["#version = :v1", *(f"#{k} = :s{i}" for i, k in enumerate(publish_item(state)))]
        for i, (k, v) in enumerate(_to_dynamo(extra).items()):
            sets.append(f"#{k} = :x{i}")
            values[f":x{i}"] = v
        try:
            self._update_raw(Key=self._key(channel_id, PUB), UpdateExpression="SET " + ", ".join(sets),
                             ConditionExpression="#lease_owner = :me AND (attribute_not_exists(#version) "
                                                 "OR #version = :v)",
                             ExpressionAttributeValues=values)
        except ClientError as e:
            if _failed_condition(e):
                raise ConcurrentUpdateError(f"lost the packaging lease of {channel_id}") from e
            raise StoreError(f"PUB commit failed: {e}") from e
        return lease.version + 1

    def release(self, channel_id: str, lease: Lease, work: int) -> bool:
        """Release if no work arrived since `work` was read; False means: render again."""
        try:
            self._update_raw(
                Key=self._key(channel_id, PUB), UpdateExpression="REMOVE #lease_owner, #lease_until",
                ConditionExpression="#lease_owner = :me AND (attribute_not_exists(#work) OR #work = :w)",
                ExpressionAttributeValues={":me": lease.owner, ":w": work},
            )
            return True
        except ClientError as e:
            if _failed_condition(e):
                return False
            raise StoreError(f"lease release failed: {e}") from e

    def force_release(self, channel_id: str, lease: Lease) -> None:
        """Release after a failure: what the origin holds is unknown now (a write may have failed midway),
        so PUB.written goes too and the next holder writes every manifest."""
        self._update(self._key(channel_id, PUB), "REMOVE #lease_owner, #lease_until, #written", {":me": lease.owner},
                     "#lease_owner = :me", quiet=True)

    def set_timer(self, channel_id: str, attr: str, when: float) -> None:
        """Remember when a delayed packager run is due (dedups timers across packager runs)."""
        self._update(self._key(channel_id, PUB), f"SET #{attr} = :w", {":w": _dec(when)})

    def request_seal(self, channel_id: str, run: int, at: datetime) -> None:
        """Stop: the packager seals `run` (publishes what arrives in a bounded wait, slates the holes)."""
        self._update(self._key(channel_id, PUB), "SET #seal_run = :r, #seal_at = if_not_exists(#seal_at, :at)",
                     {":r": run, ":at": iso_us(at)})

    def clear_seal(self, channel_id: str, run: int) -> None:
        self._update(self._key(channel_id, PUB), "REMOVE #seal_run, #seal_at", {":r": run},
                     "#seal_run = :r", quiet=True)

    def request_end(self, channel_id: str) -> None:
        self._update(self._key(channel_id, PUB), "SET #end_requested = :t", {":t": True})

    def park_paths(self, channel_id: str, paths: Iterable[str]) -> None:
        ps = set(paths)
        if ps:
            self._update(self._key(channel_id, PUB), "ADD #pending_paths :p", {":p": ps})

    def set_invalidation(self, channel_id: str, invalidation_id: str, sent: Iterable[str]) -> None:
        """Record the in-flight invalidation and drop the paths it covers from pending."""
        sent_set = set(sent)
        expr = "SET #invalidation_id = :i" + (" DELETE #pending_paths :p" if sent_set else "")
        values: dict[str, Any] = {":i": invalidation_id}
        if sent_set:
            values[":p"] = sent_set
        self._update(self._key(channel_id, PUB), expr, values)

    # ---- plumbing ----
    def _key(self, channel_id: str, sk: str) -> dict[str, str]:
        return {"pk": channel_pk(channel_id), "sk": sk}

    def _get(self, channel_id: str, sk: str) -> dict[str, Any] | None:
        try:
            resp = self._t.get_item(Key=self._key(channel_id, sk), ConsistentRead=True)
        except ClientError as e:
            raise StoreError(f"DynamoDB read failed: {e}") from e
        item = resp.get("Item")
        return dict(item) if item else None

    def _query(self, channel_id: str, lo: str, hi: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(channel_pk(channel_id)) & Key("sk").between(lo, hi),
            "ConsistentRead": True,
        }
        try:
            while True:
                resp = self._t.query(**kwargs)
                items.extend(resp.get("Items", []))
                if "LastEvaluatedKey" not in resp:
                    return items
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        except ClientError as e:
            raise StoreError(f"DynamoDB query failed: {e}") from e

    def _update_raw(self, **kwargs: Any) -> Any:
        """update_item with every `#name` in the expressions aliased to `name` (DynamoDB reserves
        hundreds of words -- base, errors, status, ... -- so no bare attribute names are used)."""
        text = " ".join(str(kwargs.get(k, "")) for k in ("UpdateExpression", "ConditionExpression"))
        names = {f"#{n}": n for n in re.findall(r"#(\w+)", text)}
        names.update(kwargs.pop("ExpressionAttributeNames", {}) or {})
        return self._t.update_item(**kwargs, ExpressionAttributeNames=names)

    def _update(self, key: dict[str, str], expr: str, values: dict[str, Any], condition: str | None = None,
                names: dict[str, str] | None = None, quiet: bool = False) -> None:
        kwargs: dict[str, Any] = {"Key": key, "UpdateExpression": expr, "ExpressionAttributeValues": values}
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._update_raw(**kwargs)
        except ClientError as e:
            if _failed_condition(e):
                if quiet:
                    return
                raise ConcurrentUpdateError(f"conditional update of {key['pk']}/{key['sk']} failed") from e
            raise StoreError(f"DynamoDB update failed: {e}") from e


def _to_dynamo(d: dict[str, Any]) -> dict[str, Any]:
    """Floats become Decimals (the resource API refuses floats), also inside lists and maps."""

    def conv(v: Any) -> Any:
        if isinstance(v, float):
            return _dec(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        return v

    return {k: conv(v) for k, v in d.items()}


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _time(v: Any) -> datetime | None:
    return parse_iso(str(v)) if v else None


def run_info(it: Mapping[str, Any]) -> RunInfo:
    return RunInfo(run=int(it["run"]), availability_start=parse_iso(str(it["availability_start"])),
                   audio_phase=int(it.get("audio_phase", 0)), slate_ready=bool(it.get("slate_ready")),
                   started_at=_time(it.get("started_at")))


def chunk_state(it: Mapping[str, Any]) -> ChunkState:
    """A SEG# item as the planner sees it: a slate claim's slot facts, else the worker's actual spans once
    done, else ingest's (what the transcode will produce)."""
    fill = str(it.get("fill") or "")
    if fill == SLATE:
        v_start, v_dur = _int(it.get("slate_v_start")), _int(it.get("slate_v_dur"))
        a_start, a_dur = _int(it.get("slate_a_start")), _int(it.get("slate_a_dur"))
        iframes = it.get("slate_iframes") or {}
    else:
        v_start, v_dur = _int(it.get("v_start")), _int(it.get("v_dur"))
        a_start, a_dur = _int(it.get("a_start")), _int(it.get("a_dur"))
        iframes = {k[4:]: v for k, v in it.items() if k.startswith("ifr_")}
    return ChunkState(
        seq=int(it["seq"]),
        status=INVALID if it.get("status") == INVALID else RECEIVED,
        received_at=parse_iso(str(it["received_at"])),
        v_start=v_start, v_dur=v_dur, a_start=a_start, a_dur=a_dur,
        done=frozenset(it.get("done") or ()),
        done_at=_time(it.get("done_at")),
        fill=fill,
        claimed_at=_time(it.get("claimed_at")),
        iframes={str(k): tuple((int(r[0]), int(r[1]), int(r[2])) for r in v) for k, v in iframes.items()},
        codecs={k[6:]: str(v) for k, v in it.items() if k.startswith("codec_")},
        run=int(it.get("run", 0)),
        late=bool(it.get("late")),
        ext=str(it.get("ext") or ""),
    )


def publish_item(state: PublishState) -> dict[str, Any]:
    """PublishState -> PUB attributes."""
    return {
        "ast": iso_us(state.ast) if state.ast else "",
        "target": state.target,
        "runs": [{"run": r.run, "msn_base": r.msn_base, "first_seq": r.first_seq, "last_seq": r.last_seq,
                  "sealed": r.sealed, "slates": sorted(r.slates)} for r in state.runs],
        "periods": [{"id": p.id, "run": p.run, "first_seq": p.first_seq, "start": _dec(p.start), "v0": p.v0,
                     "a0": p.a0, "pdt0": iso_us(p.pdt0), "disc": p.disc} for p in state.periods],
        "disc_before": state.disc_before,
        "placements": {k: _placement_item(v) for k, v in state.placements.items()},
        "ended": state.ended,
        "periods_total": state.periods_total,
    }


def _placement_item(p: Placement) -> dict[str, Any]:
    out: dict[str, Any] = {"out_seq": p.out_seq, "out_run": p.out_run, "out_pdt": iso_us(p.out_pdt),
                           "out_media": _dec(p.out_media), "out_period": p.out_period}
    if p.in_seq is not None and p.in_pdt is not None and p.in_media is not None:
        out.update({"in_seq": p.in_seq, "in_run": p.in_run, "in_pdt": iso_us(p.in_pdt), "in_media": _dec(p.in_media)})
    return out


def publish_state(pub: Mapping[str, Any]) -> PublishState:
    """PUB attributes -> PublishState."""
    placements = {}
    for k, v in (pub.get("placements") or {}).items():
        placements[str(k)] = Placement(
            int(v["out_seq"]), str(v.get("out_run", "")), parse_iso(str(v["out_pdt"])), float(v["out_media"]),
            str(v.get("out_period", "")), _int(v.get("in_seq")), str(v.get("in_run", "")), _time(v.get("in_pdt")),
            float(v["in_media"]) if v.get("in_media") is not None else None)
    return PublishState(
        ast=_time(pub.get("ast")),
        target=int(pub.get("target", 0)),
        runs=tuple(RunState(int(r["run"]), int(r["msn_base"]), int(r["first_seq"]), int(r["last_seq"]),
                            bool(r.get("sealed")), frozenset(int(x) for x in r.get("slates") or ()))
                   for r in pub.get("runs") or ()),
        periods=tuple(PeriodState(str(p["id"]), int(p["run"]), int(p["first_seq"]), float(p["start"]), int(p["v0"]),
                                  int(p["a0"]), parse_iso(str(p["pdt0"])), bool(p.get("disc", True)))
                      for p in pub.get("periods") or ()),
        disc_before=int(pub.get("disc_before", 0)),
        placements=placements,
        ended=bool(pub.get("ended")),
        periods_total=int(pub.get("periods_total", 0)),
    )
