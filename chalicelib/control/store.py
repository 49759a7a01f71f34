"""DynamoDB adapter for channel META and ad-break items (layout in chalicelib.records).

Every state change is a conditional write on the expected previous state, so two concurrent
commands cannot both win; the loser learns why (404, or 409 naming the current state).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..errors import (
    ConcurrentUpdateError,
    ConflictError,
    NotFoundError,
    StateTransitionError,
    StoreError,
    aws_error_code,
)
from ..records import CREATING, DELETED, META, ChannelRecord, break_sk, channel_pk

_ser = TypeSerializer()
_de = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    """Floats become Decimals (DynamoDB has no binary floats)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_to_dynamo(v)) for k, v in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_de.deserialize(v)) for k, v in item.items()}


class ChannelStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    # --- channels ---

    def create(self, record: ChannelRecord) -> None:
        """Put a new META. Ids are never reused (old segments and breaks stay keyed by them)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=serialize(record.to_item()),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as e:
            if aws_error_code(e) == "ConditionalCheckFailedException":
                raise ConflictError(f"channel {record.id!r} already exists (ids are never reused)") from None
            raise self._wrap(e) from e

    def discard_new(self, channel_id: str) -> None:
        """Undo `create` while the channel is still CREATING (its lifecycle never started)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=serialize({"pk": channel_pk(channel_id), "sk": META}),
                ConditionExpression="#s = :creating",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=serialize({":creating": CREATING}),
            )
        except Exception as e:
            if aws_error_code(e) != "ConditionalCheckFailedException":
                raise self._wrap(e) from e

    def get(self, channel_id: str, *, include_deleted: bool = False) -> ChannelRecord:
        item = self._get_item(channel_id, META)
        if item is None or (item.get("state") == DELETED and not include_deleted):
            raise NotFoundError(f"channel {channel_id!r} not found")
        return ChannelRecord.from_item(item)

    def get_raw(self, channel_id: str) -> dict[str, Any] | None:
        return self._get_item(channel_id, META)

    def list_channels(self) -> list[ChannelRecord]:
        """All live (not deleted) channels, sorted by id. A scan: channels number in the hundreds."""
        out: list[ChannelRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "sk = :meta AND #s <> :deleted",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": serialize({":meta": META, ":deleted": DELETED}),
        }
        try:
            while True:
                page = self._db.scan(**kwargs)
                out.extend(ChannelRecord.from_item(deserialize(i)) for i in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except Exception as e:
            raise self._wrap(e) from e
        return sorted(out, key=lambda r: r.id)

    def update(
        self,
        channel_id: str,
        changes: Mapping[str, Any],
        *,
        expect_states: Iterable[str] | None = None,
        remove: Iterable[str] = (),
        now: str = "",
        return_old: bool = False,
        counters: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Conditionally SET `changes` (and REMOVE `remove`, and add 1 to each of `counters`) on META;
        returns the new item (or, with `return_old`, the item as it was just before this write, atomically).

        `expect_states` None means any state except DELETED. A failed condition is reported as
        NotFoundError or StateTransitionError naming the current state.
        """
        expected = None if expect_states is None else tuple(expect_states)
        names: dict[str, str] = {"#s": "state", "#v": "version"}
        values: dict[str, Any] = {":one": 1, ":deleted": DELETED}
        sets = ["#v = if_not_exists(#v, :zero) + :one"]
        values[":zero"] = 0
        all_changes = dict(changes)
        if now:
            all_changes["updated_at"] = now
        for i, (k, v) in enumerate(all_changes.items()):
            names[f"#f{i}"] = k
            values[f":f{i}"] = v
            sets.append(f"#f{i} = :f{i}")
        for j, k in enumerate(counters):
            names[f"#c{j}"] = k
            sets.append(f"#c{j} = if_not_exists(#c{j}, :zero) + :one")
        expr = "SET " + ", ".join(sets)
        removes = list(remove)
        if removes:
            for j, k in enumerate(removes):
                names[f"#r{j}"] = k
            expr += " REMOVE " + ", ".join(f"#r{j}" for j in range(len(removes)))
        cond = "attribute_exists(pk) AND #s <> :deleted"
        if expected is not None:
            keys = []
            for j, st in enumerate(expected):
                values[f":e{j}"] = st
                keys.append(f":e{j}")
            cond += f" AND #s IN ({', '.join(keys)})"
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=serialize({"pk": channel_pk(channel_id), "sk": META}),
                UpdateExpression=expr,
                ConditionExpression=cond,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_OLD" if return_old else "ALL_NEW",
            )
        except Exception as e:
            if aws_error_code(e) == "ConditionalCheckFailedException":
                raise self._explain(channel_id, expected, all_changes.get("state")) from None
            raise self._wrap(e) from e
        return deserialize(out["Attributes"])

    def transition(
        self, channel_id: str, to: str, expect: Iterable[str], *, now: str, **changes: Any
    ) -> dict[str, Any]:
        return self.update(channel_id, {"state": to, **changes}, expect_states=expect, now=now)

    def _explain(self, channel_id: str, expected: tuple[str, ...] | None, to: object) -> Exception:
        item = self._get_item(channel_id, META)
        if item is None or item.get("state") == DELETED:
            return NotFoundError(f"channel {channel_id!r} not found")
        current = item.get("state")
        if expected is not None and current not in expected:
            target = f" to {to}" if to else ""
            return StateTransitionError(
                f"channel {channel_id!r} is {current}; this needs {' or '.join(expected)}{target}"
            )
        return ConcurrentUpdateError(f"channel {channel_id!r} changed concurrently; retry")

    # --- ad breaks ---

    def put_break_with_event_id(
        self, channel_id: str, make_item: Any, allowed_states: Iterable[str], attempts: int = 5
    ) -> dict[str, Any]:
        """Allocate the next splice_event_id and put the break in ONE transaction.

        `make_item(event_id) -> dict` builds the break item. The META counter and the break
        commit together or not at all, so a rejected break never burns or reuses an id.
        """
        allowed = tuple(allowed_states)
        for _ in range(attempts):
            meta = self._get_item(channel_id, META)
            if meta is None or meta.get("state") == DELETED:
                raise NotFoundError(f"channel {channel_id!r} not found")
            if meta.get("state") not in allowed:
                raise StateTransitionError(
                    f"channel {channel_id!r} is {meta.get('state')}; ad breaks need {' or '.join(allowed)}"
                )
            current = int(meta.get("next_event_id", 1))
            item = make_item(current)
            values: dict[str, Any] = {":n": current, ":next": current + 1}
            for j, st in enumerate(allowed):
                values[f":e{j}"] = st
            in_states = ", ".join(f":e{j}" for j in range(len(allowed)))
            counter_cond = "(attribute_not_exists(next_event_id) AND :n = :one) OR next_event_id = :n"
            values[":one"] = 1
            try:
                self._db.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": serialize({"pk": channel_pk(channel_id), "sk": META}),
                                "UpdateExpression": "SET next_event_id = :next",
                                "ConditionExpression": f"({counter_cond}) AND #s IN ({in_states})",
                                "ExpressionAttributeNames": {"#s": "state"},
                                "ExpressionAttributeValues": serialize(values),
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": serialize(item),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
                return item
            except Exception as e:
                if aws_error_code(e) != "TransactionCanceledException":
                    raise self._wrap(e) from e
                reasons = [r.get("Code") for r in getattr(e, "response", {}).get("CancellationReasons", [])]
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    raise ConflictError(f"ad break {item['id']!r} already exists") from None
                # META changed under us (another break took the id, or the state moved): re-read.
        raise ConcurrentUpdateError(f"channel {channel_id!r}: too many concurrent ad-break writes; retry")

    def get_break(self, channel_id: str, break_id: str) -> dict[str, Any]:
        item = self._get_item(channel_id, break_sk(break_id))
        if item is None:
            raise NotFoundError(f"ad break {break_id!r} not found on channel {channel_id!r}")
        return item

    def list_breaks(self, channel_id: str) -> list[dict[str, Any]]:
        return list(self._query_prefix(channel_id, "BRK#"))

    def update_break(
        self, channel_id: str, break_id: str, changes: Mapping[str, Any], expect_state: str
    ) -> dict[str, Any]:
        names = {"#s": "state"}
        values: dict[str, Any] = {":expect": expect_state}
        sets = []
        for i, (k, v) in enumerate(changes.items()):
            names[f"#f{i}"] = k
            values[f":f{i}"] = v
            sets.append(f"#f{i} = :f{i}")
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=serialize({"pk": channel_pk(channel_id), "sk": break_sk(break_id)}),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(pk) AND #s = :expect",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW",
            )
        except Exception as e:
            if aws_error_code(e) == "ConditionalCheckFailedException":
                current = self.get_break(channel_id, break_id)
                raise ConflictError(
                    f"ad break {break_id!r} is {current.get('state')}, not {expect_state}"
                ) from None
            raise self._wrap(e) from e
        return deserialize(out["Attributes"])

    # --- helpers ---

    def _get_item(self, channel_id: str, sk: str) -> dict[str, Any] | None:
        try:
            out = self._db.get_item(
                TableName=self._table,
                Key=serialize({"pk": channel_pk(channel_id), "sk": sk}),
                ConsistentRead=True,
            )
        except Exception as e:
            raise self._wrap(e) from e
        return deserialize(out["Item"]) if "Item" in out else None

    def _query_prefix(self, channel_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": serialize({":pk": channel_pk(channel_id), ":p": prefix}),
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self._db.query(**kwargs)
                yield from (deserialize(i) for i in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except Exception as e:
            raise self._wrap(e) from e

    @staticmethod
    def _wrap(e: Exception) -> Exception:
        if isinstance(e, StoreError | NotFoundError | ConflictError):
            return e
        return StoreError(f"channel store unavailable ({aws_error_code(e) or type(e).__name__})")
