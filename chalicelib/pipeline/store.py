"""DynamoDB adapter for the pipeline's items (SEG#, PUB, and the fields of META it maintains).

Every write that can race is conditional:
- SEG# put: `attribute_not_exists(sk) OR run <> :run` -- the first event for (channel, seq) in a
  run wins; a redelivery with the same ETag is a duplicate, another ETag is a conflict.
- SEG# done: `etag = :etag` -- a transcode of a superseded chunk cannot mark the new one done.
- PUB base: `attribute_not_exists(base) OR run <> :run` -- one base per run.
- PUB lease: `lease_until < :now OR attribute_not_exists(lease_until) OR owner = :me` -- one
  packager per channel; `work` counts requests so a lease holder sees work that arrived while it
  rendered and renders again (no update is ever lost).
Items come back with Decimals; they are converted here, at the edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConcurrentUpdateError, ConflictError, StoreError, aws_error_code
from ..records import META, PUB, ChannelRecord, channel_pk, iso, parse_iso, segment_sk
from .assemble import INVALID, RECEIVED, ChunkState, PublishState


def _dec(x: float) -> Decimal:
    return Decimal(str(round(x, 6)))


def _failed_condition(e: ClientError) -> bool:
    return aws_error_code(e) == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Lease:
    owner: str
    work: int  # the request counter seen when the lease was taken
    version: int  # PUB.version seen when the lease was taken
    pub: dict[str, Any]


class PipelineStore:
    def __init__(self, table: Any) -> None:
        self._t = table

    # ---- META ----
    def channel(self, channel_id: str) -> ChannelRecord | None:
        item = self._get(channel_id, META)
        return ChannelRecord.from_item(item) if item else None

    def note_arrival(self, channel_id: str, seq: int, at: datetime) -> None:
        """Watchdog input: newest arrival time, highest seq (only ever grows)."""
        key = self._key(channel_id, META)
        try:
            self._update_raw(
                Key=key, UpdateExpression="SET #last_segment_at = :at, #last_seq = :seq",
                ConditionExpression="attribute_exists(#pk) AND (attribute_not_exists(#last_seq) OR #last_seq < :seq)",
                ExpressionAttributeValues={":at": iso(at), ":seq": seq},
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

    # ---- SEG# ----
    def put_chunk(self, channel_id: str, seq: int, item: dict[str, Any]) -> str:
        """Record a chunk. Returns "new" or "duplicate"; raises ConflictError on another ETag."""
        full = {**self._key(channel_id, segment_sk(seq)), "seq": seq, **_to_dynamo(item)}
        try:
            self._t.put_item(Item=full,
                             ConditionExpression="attribute_not_exists(#sk) OR #run <> :run",
                             ExpressionAttributeNames={"#sk": "sk", "#run": "run"},
                             ExpressionAttributeValues={":run": full.get("run", "")})
            return "new"
        except ClientError as e:
            if not _failed_condition(e):
                raise StoreError(f"segment put failed: {e}") from e
        existing = self._get(channel_id, segment_sk(seq)) or {}
        if existing.get("etag") == item.get("etag"):
            return "duplicate"
        raise ConflictError(
            f"chunk {channel_id}/{seq} was already received with ETag {existing.get('etag')!r}; "
            f"ignoring the upload with ETag {item.get('etag')!r}"
        )

    def update_chunk(self, channel_id: str, seq: int, etag: str, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(_to_dynamo(fields).values())}
        self._update(self._key(channel_id, segment_sk(seq)), f"SET {sets}", {**values, ":etag": etag},
                     "#etag = :etag", names=names)

    def chunk(self, channel_id: str, seq: int) -> dict[str, Any] | None:
        return self._get(channel_id, segment_sk(seq))

    def mark_done(self, channel_id: str, seq: int, etag: str, renditions: Iterable[str],
                  transcode_seconds: float) -> None:
        self._update(self._key(channel_id, segment_sk(seq)),
                     "ADD #done :r, #transcode_seconds :s", {":r": set(renditions), ":s": _dec(transcode_seconds),
                                                          ":etag": etag}, "#etag = :etag")

    def chunks(self, channel_id: str, from_seq: int, run: str) -> list[ChunkState]:
        items = self._query(channel_id, segment_sk(max(0, from_seq)), "SEG#~")
        out = []
        for it in items:
            if it.get("run", "") != run:
                continue
            out.append(ChunkState(
                seq=int(it["seq"]),
                status=INVALID if it.get("status") == INVALID else RECEIVED,
                received_at=parse_iso(str(it["received_at"])),
                media_start=float(it["media_start"]) if it.get("media_start") is not None else None,
                duration=float(it["duration"]) if it.get("duration") is not None else None,
                done=frozenset(it.get("done") or ()),
            ))
        return out

    def received_at(self, channel_id: str, seqs: Iterable[int]) -> dict[int, str]:
        return {s: str(it["received_at"]) for s in seqs if (it := self.chunk(channel_id, s))}

    def ad_break_items(self, channel_id: str) -> list[dict[str, Any]]:
        return self._query(channel_id, "BRK#", "BRK#~")

    # ---- PUB ----
    def pub(self, channel_id: str) -> dict[str, Any]:
        return self._get(channel_id, PUB) or {}

    def fix_base(self, channel_id: str, run: str, base: float, availability_start: datetime
                 ) -> tuple[float, datetime]:
        """The run's (base, availability_start): ours if we are first, else the stored one."""
        try:
            self._update_raw(
                Key=self._key(channel_id, PUB),
                UpdateExpression="SET #base = :b, #run = :run, #availability_start = :a "
                                 "REMOVE #first_seq, #published_seq, #gaps, #discontinuities_before, #ended, "
                                 "#first_start, #first_disc",
                ConditionExpression="attribute_not_exists(#base) OR #run <> :run",
                ExpressionAttributeValues={":b": _dec(base), ":run": run, ":a": iso(availability_start)},
            )
            return base, availability_start
        except ClientError as e:
            if not _failed_condition(e):
                raise StoreError(f"PUB base write failed: {e}") from e
        item = self.pub(channel_id)
        return float(item["base"]), parse_iso(str(item["availability_start"]))

    def request_work(self, channel_id: str) -> None:
        self._update(self._key(channel_id, PUB), "ADD #work :one", {":one": 1})

    def acquire(self, channel_id: str, owner: str, now: float, ttl: float) -> Lease | None:
        try:
            resp = self._update_raw(
                Key=self._key(channel_id, PUB),
                UpdateExpression="SET #lease_owner = :me, #lease_until = :until",
                ConditionExpression="attribute_not_exists(#lease_until) OR #lease_until < :now OR #lease_owner = :me",
                ExpressionAttributeValues={":me": owner, ":until": _dec(now + ttl), ":now": _dec(now)},
                ReturnValues="ALL_NEW",
            )
        except ClientError as e:
            if _failed_condition(e):
                return None
            raise StoreError(f"lease acquire failed: {e}") from e
        item = resp["Attributes"]
        return Lease(owner, int(item.get("work", 0)), int(item.get("version", 0)), item)

    def commit(self, channel_id: str, lease: Lease, state: PublishState, extra: dict[str, Any]) -> int:
        """Record what was published; only while we still hold the lease. Returns the new version."""
        values: dict[str, Any] = {
            ":me": lease.owner, ":v": lease.version, ":v1": lease.version + 1,
            ":ps": state.published_seq, ":db": state.discontinuities_before,
        }
        sets = ["#version = :v1", "#published_seq = :ps", "#discontinuities_before = :db"]
        removes = []
        if state.first_seq is not None:
            sets.append("#first_seq = :fs")
            values[":fs"] = state.first_seq
        if state.first_start is not None:
            sets += ["#first_start = :fst", "#first_disc = :fd"]
            values[":fst"], values[":fd"] = _dec(state.first_start), state.first_disc
        if state.gaps:
            sets.append("#gaps = :g")
            values[":g"] = set(state.gaps)
        else:
            removes.append("#gaps")
        for i, (k, v) in enumerate(_to_dynamo(extra).items()):
            sets.append(f"#{k} = :x{i}")
            values[f":x{i}"] = v
        expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._update_raw(Key=self._key(channel_id, PUB), UpdateExpression=expr,
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
        self._update(self._key(channel_id, PUB), "REMOVE #lease_owner, #lease_until", {":me": lease.owner},
                     "#lease_owner = :me", quiet=True)

    def set_timer(self, channel_id: str, attr: str, when: float) -> None:
        """Remember when a delayed packager run is due (dedups timers across packager runs)."""
        self._update(self._key(channel_id, PUB), f"SET #{attr} = :w", {":w": _dec(when)})

    def mark_ended(self, channel_id: str) -> None:
        self._update(self._key(channel_id, PUB), "SET #ended = :t", {":t": True})

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
    """Floats become Decimals (the resource API refuses floats)."""
    return {k: _dec(v) if isinstance(v, float) else v for k, v in d.items()}
