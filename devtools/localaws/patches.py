"""What moto 5.2.5 lacks to be a working local AWS for Slipstream, patched in the server process only.

Findings from moto's source (site-packages/moto), and what each patch changes:
- Lambda: `LambdaFunction._invoke_lambda` needs Docker. Replaced by `Executor` (a subprocess per
  invocation). `LambdaFunction.invoke` ran everything synchronously, even InvocationType=Event; Event
  invocations now return 202 at once and run in the worker pool with Lambda's two async retries and the
  function's OnFailure SQS destination (PutFunctionEventInvokeConfig).
- S3 -> Lambda: `moto.s3.notifications._invoke_awslambda` invoked inline, so PutObject waited for the
  handler. Now asynchronous (S3 invokes Lambda with InvocationType=Event in AWS).
- SQS -> Lambda: `Queue.add_message` delivered each message, alone, inline in SendMessage, and on error
  made it visible again with nobody polling. Replaced by `SqsPoller`: batches up to BatchSize, honours
  the visibility timeout, ReportBatchItemFailures, and the redrive policy (moto's ReceiveMessage moves
  a message to the DLQ once its receive count reaches maxReceiveCount).
- EventBridge -> Lambda: `Rule.send_to_targets` raised NotImplementedError for Lambda targets; Lambda
  targets now get the (Input/InputPath/InputTransformer-shaped) event asynchronously. S3 buckets with
  EventBridge enabled reach these rules through moto's own `_send_event_bridge_message`.
- Step Functions: moto's ASL interpreter is switched on (`execute_state_machine`); its Lambda tasks
  call back into this server over HTTP (MOTO_PORT), so they run through the executor too.
- DynamoDB responses (CPU only, same bytes out): moto's generic response serializer walks botocore's
  output shape member by member, with alias lookups, for every attribute value of every item -- 0.6 ms
  per item, 86 % of a 60-item Query. `fast_attribute_value` writes an AttributeValue ({"S": ...},
  {"M": {...}}, ...) directly, exactly as the generic path would (test_localaws_units checks both
  agree), and hands anything it does not recognise back to the generic path. UpdateItem parsed its
  UpdateExpression twice per call; parsed trees are now kept per expression text (every consumer
  either only reads the tree or deep-copies it first, as moto's validator does).
- DynamoDB Query (CPU only, same items out): a base-table Query took its candidates from
  `Table.all_items()`, which lists and sorts *every item of the table* (all channels, the growing
  IDEM# partition) with Python-level DynamoType comparisons before keeping the one partition asked
  for: 11 ms per Query after two minutes of four channels, growing with the table. `partition_query`
  hands moto's own `Table.query` a view of the table whose `all_items()` is that partition's items that
  meet the sort-key condition (moto's own comparison; moto then checks it again, sorts, pages, filters,
  projects and copies exactly as before); index queries are untouched.
- DynamoDB item JSON (CPU only, same JSON out): `DynamoType.to_regular_json` deep-copied its whole value
  and then recursed into the copy, which deep-copies every nested level again (depth x size: the PUB
  item's lists of maps were copied three times per UpdateItem/GetItem). `install_flat_regular_json`
  builds the same fresh structure in one pass (scalars are immutable; containers are rebuilt).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

from .executor import Executor, FunctionSpec, Invocation
from .stats import RequestStats

log = logging.getLogger("localaws.patches")


def _patch(owner: Any, name: str, value: Any) -> None:
    """Replace owner.name; every patch of moto goes through here so they are easy to find."""
    if not hasattr(owner, name):
        raise RuntimeError(f"moto changed: {owner!r} has no {name!r} to patch (pinned moto is 5.2.5)")
    setattr(owner, name, value)


def _function_spec(fn: Any) -> FunctionSpec:
    from moto.awslambda.utils import get_backend

    backend = get_backend(fn.account_id, fn.region)
    layers = []
    for layer in fn.layers:
        version = backend.layers_versions_by_arn(layer["Arn"])
        if version is not None:
            layers.append(version.code_bytes)
    return FunctionSpec(
        name=fn.function_name,
        arn=fn.function_arn,
        handler=fn.handler or "",
        code=fn.code_bytes,
        timeout=float(fn.timeout or 3),
        memory_mb=int(fn.memory_size or 128),
        env={k: str(v) for k, v in (fn.environment_vars or {}).items()},
        layers=tuple(layers),
        version=str(fn.version),
        region=fn.region,
    )


def _fresh(fn: Any) -> Any:
    """The current deployment of fn (a retry after UpdateFunctionCode must run the new code)."""
    from moto.awslambda.utils import get_backend

    try:
        return get_backend(fn.account_id, fn.region).get_function(fn.function_name)
    except Exception:
        return fn


def _cloudwatch(fn: Any, inv: Invocation) -> None:
    """Copy the invocation's log into moto's CloudWatch Logs, one stream per invocation."""
    logs = fn.logs_backend
    logs.ensure_log_group(fn.logs_group_name)
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[{fn.version}]{inv.request_id.replace('-', '')}"
    logs.create_log_stream(fn.logs_group_name, stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": line} for line in inv.log_text.splitlines() if line]
    if events:
        logs.put_log_events(fn.logs_group_name, stream, events)


_ATTRIBUTE_VALUE_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})
_GENERIC = object()  # "not mine": the generic serializer handles this value


def _string(x: Any) -> Any:
    """What moto's JSON serializer makes of a string-shaped value."""
    return str(x) if x not in (None, {}, []) else x


def fast_attribute_value(serializer: Any, value: Any) -> Any:
    """The JSON form of one DynamoDB AttributeValue, as moto's shape-driven serializer writes it, or
    _GENERIC when the value is not the plain {type: value} dict moto's dynamo_to_dict produces."""
    if not isinstance(value, dict) or not value.keys() <= _ATTRIBUTE_VALUE_MEMBERS:
        return _GENERIC
    out: dict[str, Any] = {}
    for t, x in value.items():
        if x is None:  # a structure member that is None is left out
            continue
        if t in ("S", "N"):
            out[t] = _string(x)
        elif t == "B":
            out[t] = serializer._base64(x)
        elif t in ("SS", "NS"):
            out[t] = [_string(e) for e in x]
        elif t == "BS":
            out[t] = [serializer._base64(e) for e in x]
        elif t == "M":
            m = {}
            for k, e in x.items():
                if e is None:  # a map entry whose value serializes to nothing is left out
                    continue
                v = fast_attribute_value(serializer, e)
                if v is _GENERIC:
                    return _GENERIC
                m[k] = v
            out[t] = m
        elif t == "L":
            items = []
            for e in x:
                v = e if e is None else fast_attribute_value(serializer, e)  # a None item stays None
                if v is _GENERIC:
                    return _GENERIC
                items.append(v)
            out[t] = items
        else:  # NULL, BOOL: booleans as they are
            out[t] = x
    return out


def install_fast_dynamodb_serializer() -> None:
    from moto.core import serialize

    cls = serialize.get_serializer_class("dynamodb", "json")
    generic = cls._serialize_type_structure

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (key and shape.name == "AttributeValue"
                and self.operation_model.service_model.service_name == "dynamodb"
                and not getattr(self._value_picker, "response_transformers", None)):
            out = fast_attribute_value(self, value)
            if out is not _GENERIC:
                serialized[self.get_serialized_name(shape, key)] = out
                return
        generic(self, serialized, value, shape, key)

    _patch(cls, "_serialize_type_structure", _serialize_type_structure)


def install_update_expression_cache(size: int = 512) -> None:
    from moto.dynamodb.parsing import expressions

    UpdateExpressionParser: Any = getattr(expressions, "UpdateExpressionParser")  # noqa: B009 -- untyped in moto
    parse = UpdateExpressionParser.make.__func__
    trees: dict[str, Any] = {}
    lock = threading.Lock()

    def make(cls: Any, expression_str: str) -> Any:
        tree = trees.get(expression_str)
        if tree is None or cls is not UpdateExpressionParser:
            tree = parse(cls, expression_str)  # a syntax error raises here and is never kept
            if cls is UpdateExpressionParser:
                with lock:
                    if len(trees) >= size:
                        trees.clear()
                    trees[expression_str] = tree
        return tree

    _patch(UpdateExpressionParser, "make", classmethod(make))


def install_flat_regular_json() -> None:
    import base64

    from moto.dynamodb.models.dynamo_type import DynamoType

    def to_regular_json(self: Any) -> dict[str, Any]:
        value = self.value
        if isinstance(value, dict):
            value = {k: v.to_regular_json() if isinstance(v, DynamoType) else copy.deepcopy(v)
                     for k, v in value.items()}
        elif isinstance(value, list):
            value = [v.to_regular_json() if isinstance(v, DynamoType) else copy.deepcopy(v) for v in value]
        else:
            value = copy.deepcopy(value)
        if self.is_binary() and isinstance(value, str):
            value = base64.b64decode(value)
        return {self.type: value}

    _patch(DynamoType, "to_regular_json", to_regular_json)


class _Partition:
    """A table seen through one partition: `all_items()` is that partition's items, everything else is
    the table's own (moto's Table.query reads only attributes and helper methods from `self`)."""

    def __init__(self, table: Any, items: list[Any]) -> None:
        self._table = table
        self._items = items

    def all_items(self) -> list[Any]:
        return self._items  # Table.query keeps those with the hash key, then sorts them by range key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def install_partition_query() -> None:
    from moto.dynamodb.comparisons import get_comparison_func
    from moto.dynamodb.models.table import Table

    original: Any = Table.query
    params = ("hash_key", "range_comparison", "range_objs", "limit", "exclusive_start_key",
              "scan_index_forward", "projection_expressions", "index_name")

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = dict(zip(params, args, strict=False)) | kwargs
        hash_key = given.get("hash_key")
        if given.get("index_name") or not self.range_key_attr or hash_key is None:
            return original(self, *args, **kwargs)
        partition = self.items.get(hash_key)  # .get: items is a defaultdict, a miss must not add a key
        items = list(partition.values()) if partition else []
        comparison, objs = given.get("range_comparison"), given.get("range_objs") or []
        test = get_comparison_func(comparison) if comparison else None
        if test is not None and items:
            # The key condition on the sort key, evaluated once per item exactly as moto's DynamoType.compare
            # does (its cast values, its comparison function): moto then sorts only what can match, and
            # checks it again itself.
            bounds = [o.cast_value for o in objs]
            try:
                items = [it for it in items if it.range_key is not None and test(it.range_key.cast_value, *bounds)]
            except Exception:  # whatever moto makes of an odd comparison, it decides it itself
                items = list(partition.values()) if partition else []
        return original(_Partition(self, items), *args, **kwargs)

    _patch(Table, "query", query)


class Emulator:
    """Holds the executor and the poller; `install()` wires them into moto (once per process)."""

    def __init__(self, executor: Executor, stats: RequestStats | None = None) -> None:
        self.executor = executor
        self.stats = stats
        self.poller = SqsPoller(executor)
        executor.on_logs = self._to_cloudwatch

    @staticmethod
    def _to_cloudwatch(spec: FunctionSpec, inv: Invocation) -> None:
        from moto.awslambda.utils import get_backend

        _, _, _, region, account, *_ = spec.arn.split(":")
        _cloudwatch(get_backend(account, region).get_function(spec.name), inv)

    # -- Lambda -----------------------------------------------------------------------------------
    def run_sync(self, fn: Any, event: Any) -> Invocation:
        return self.executor.invoke(_function_spec(fn), event)

    def run_async(self, fn: Any, event: Any) -> None:
        max_retries, on_failure_arn = 2, None
        for cfg in getattr(fn, "event_invoke_config", []) or []:
            max_retries = int(cfg.config.get("MaximumRetryAttempts", max_retries))
            on_failure_arn = cfg.config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")

        def on_failure(inv: Invocation) -> None:
            log.warning("async invocation of %s failed after retries: %s", fn.function_name, inv.payload)
            if on_failure_arn and on_failure_arn.split(":")[2] == "sqs":
                from moto.sqs.models import sqs_backends

                _, _, _, region, account, name = on_failure_arn.split(":")
                record = {
                    "version": "1.0",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "requestContext": {
                        "requestId": inv.request_id,
                        "functionArn": fn.function_arn,
                        "condition": "RetriesExhausted",
                        "approximateInvokeCount": max_retries + 1,
                    },
                    "requestPayload": event,
                    "responseContext": {"statusCode": 200, "functionError": inv.error},
                    "responsePayload": json.loads(inv.payload),
                }
                sqs_backends[account][region].send_message(name, json.dumps(record))

        self.executor.invoke_async(
            lambda: _function_spec(_fresh(fn)), event, max_retries=max_retries, on_failure=on_failure
        )

    def install(self) -> None:
        from moto.awslambda import models as lambda_models
        from moto.core.config import default_user_config
        from moto.events import models as events_models
        from moto.s3 import notifications

        emulator = self

        def _invoke_lambda(fn: Any, event: Any = None) -> tuple[str, bool, str]:
            inv = emulator.run_sync(fn, {} if event is None else event)
            return inv.payload, inv.errored, inv.log_text

        def invoke(fn: Any, body: Any, request_headers: Any, response_headers: Any) -> str | bytes:
            event = json.loads(body) if body else {}
            inv_type = (request_headers or {}).get("x-amz-invocation-type", "RequestResponse")
            if inv_type == "DryRun":
                return ""
            if inv_type == "Event":
                emulator.run_async(fn, event)
                return ""
            inv = emulator.run_sync(fn, event)
            if inv.errored:
                response_headers["x-amz-function-error"] = inv.error
            import base64

            # LogResult carries the last 4 KB of the log, like Lambda's LogType=Tail.
            response_headers["x-amz-log-result"] = base64.b64encode(inv.log_text[-4096:].encode()).decode()
            return inv.payload.encode("utf-8")

        _patch(lambda_models.LambdaFunction, "_invoke_lambda", _invoke_lambda)
        _patch(lambda_models.LambdaFunction, "invoke", invoke)

        def _s3_invoke(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
            from moto.awslambda.utils import get_backend

            try:
                fn = get_backend(account_id, region_name).get_function(fn_arn)
            except Exception:  # S3 drops events for a missing function, as in AWS
                log.warning("S3 notification for missing function %s dropped", fn_arn)
                return
            emulator.run_async(fn, event_body)

        _patch(notifications, "_invoke_awslambda", _s3_invoke)

        original_send = events_models.Rule.send_to_targets

        def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
            if not rule.event_pattern.matches_event(original_event):
                return
            lambdas = [t for t in rule.targets if t["Arn"].split(":")[2] == "lambda"]
            others = [t for t in rule.targets if t not in lambdas]
            for target in lambdas:
                emulator._deliver_event(target, original_event)
            if others:
                saved = rule.targets
                rule.targets = others
                try:
                    original_send(rule, original_event, transform_input)
                finally:
                    rule.targets = saved

        _patch(events_models.Rule, "send_to_targets", send_to_targets)

        original_esm = lambda_models.LambdaBackend.create_event_source_mapping

        def create_event_source_mapping(backend: Any, spec: dict[str, Any]) -> Any:
            esm = original_esm(backend, spec)
            if esm.event_source_arn.split(":")[2] == "sqs":
                # Take SQS delivery away from moto's inline path; the poller owns it from now on.
                from moto.sqs.models import sqs_backends

                for queue in sqs_backends[backend.account_id][backend.region_name].queues.values():
                    if queue.queue_arn == esm.event_source_arn:
                        queue.lambda_event_source_mappings.pop(esm.function_arn, None)
                emulator.poller.register(backend, esm)
            return esm

        _patch(lambda_models.LambdaBackend, "create_event_source_mapping", create_event_source_mapping)

        original_update_esm = lambda_models.LambdaBackend.update_event_source_mapping

        def update_event_source_mapping(backend: Any, uuid_: str, spec: dict[str, Any]) -> Any:
            try:
                return original_update_esm(backend, uuid_, spec)
            finally:
                emulator.poller.wake()  # enabled, batch size: what the poller may deliver changed

        _patch(lambda_models.LambdaBackend, "update_event_source_mapping", update_event_source_mapping)

        from moto.sqs import models as sqs_models

        original_add = sqs_models.Queue.add_message
        original_visibility = sqs_models.SQSBackend.change_message_visibility

        def add_message(queue: Any, message: Any) -> None:
            original_add(queue, message)
            emulator.poller.wake()

        def change_message_visibility(backend: Any, *a: Any, **kw: Any) -> None:
            original_visibility(backend, *a, **kw)
            emulator.poller.wake()

        _patch(sqs_models.Queue, "add_message", add_message)
        _patch(sqs_models.SQSBackend, "change_message_visibility", change_message_visibility)

        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        from moto.stepfunctions.parser import models as sfn_models

        original_start = sfn_models.StepFunctionsParserBackend.start_execution

        def start_execution(backend: Any, state_machine_arn: str, name: Any = None, *args: Any, **kw: Any) -> Any:
            # moto names an unnamed execution "None", so the second unnamed start fails with
            # ExecutionAlreadyExists; AWS generates a UUID.
            return original_start(backend, state_machine_arn, name or str(uuid.uuid4()), *args, **kw)

        _patch(sfn_models.StepFunctionsParserBackend, "start_execution", start_execution)
        install_fast_dynamodb_serializer()
        install_update_expression_cache()
        install_partition_query()
        install_flat_regular_json()

        if self.stats is not None:
            from moto.s3 import models as s3_models

            stats, original_put = self.stats, s3_models.S3Backend.put_object

            def put_object(backend: Any, bucket_name: str, key_name: str, value: bytes, *a: Any, **kw: Any) -> Any:
                key = original_put(backend, bucket_name, key_name, value, *a, **kw)
                stats.object_written(bucket_name, key_name, len(value), key.etag.strip('"'), lambda: bytes(value))
                return key

            _patch(s3_models.S3Backend, "put_object", put_object)
        self.poller.start()

    def _deliver_event(self, target: dict[str, Any], original_event: dict[str, Any]) -> None:
        from moto.awslambda.utils import get_backend
        from moto.events.utils import EventTemplateParser

        event = dict(original_event)
        if isinstance(event.get("time"), int | float):  # moto keeps epoch seconds; AWS sends ISO-8601
            event["time"] = datetime.fromtimestamp(event["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if target.get("Input"):
            payload: Any = json.loads(target["Input"])
        elif target.get("InputPath"):
            payload = event
            for part in target["InputPath"].lstrip("$").strip(".").split("."):
                if part:
                    payload = payload.get(part) if isinstance(payload, dict) else None
        elif target.get("InputTransformer"):
            transformer = target["InputTransformer"]
            payload = EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=cast(Any, event),
            )
        else:
            payload = event
        _, _, _, region, account, *_ = target["Arn"].split(":")
        try:
            fn = get_backend(account, region).get_function(target["Arn"])
        except Exception:
            log.warning("EventBridge target %s does not exist; event dropped", target["Arn"])
            return
        self.run_async(fn, payload)

    def shutdown(self) -> None:
        self.poller.stop()
        self.executor.shutdown()


class SqsPoller(threading.Thread):
    """Lambda's SQS poller: receive a batch, invoke, delete what succeeded.

    Messages a failed batch held become visible again after the queue's visibility timeout, and moto's
    ReceiveMessage moves them to the DLQ once they have been received maxReceiveCount times.

    A source of the executor's workers (executor.Source): a free worker asks for the SentTimestamp of the
    oldest message it could receive now (`oldest`), and if that is older than every queued async event,
    receives a batch of that queue (`take`) and runs it. So a message is received only by a worker about
    to run it (its visibility timeout starts then, as before), and it waits behind older events only.
    Receives are serialized (moto's ReceiveMessage is not thread-safe), so no message goes out twice.

    The thread itself only watches the clock: it sleeps until the earliest in-flight or delayed message
    of a mapped queue becomes visible (no timer loop) and then wakes the workers; anything else that can
    change what it would deliver -- a message added (SendMessage, a redrive to a DLQ), a visibility
    change, a batch finished, a mapping created or updated -- wakes them directly. `max_wait` is only a
    safety net.
    """

    def __init__(self, executor: Executor, max_wait: float = 1.0) -> None:
        super().__init__(name="sqs-poller", daemon=True)
        self.executor = executor
        self.max_wait = max_wait
        self._mappings: list[tuple[Any, Any]] = []
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._receive_lock = threading.Lock()
        # take() found nothing at generation _dry: report nothing until wake() moves _gen on
        self._gen = 0
        self._dry = -1
        self.polls = 0  # how many times the clock thread looked (GET /_localaws/stats shows it)
        executor.add_source(self)

    def register(self, backend: Any, esm: Any) -> None:
        with self._lock:
            self._mappings.append((backend, esm))
        self.wake()

    def wake(self) -> None:
        with self._lock:
            self._gen += 1
        self._wake.set()
        self.executor.wake()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

    def _active(self) -> Iterator[tuple[Any, Any, Any, Any]]:
        from moto.sqs.models import sqs_backends

        with self._lock:
            mappings = list(self._mappings)
        for backend, esm in mappings:
            if esm.uuid not in backend._event_source_mappings:  # deleted mapping
                with self._lock, contextlib.suppress(ValueError):
                    self._mappings.remove((backend, esm))
                continue
            if not esm.enabled:
                continue
            sqs = sqs_backends[backend.account_id][backend.region_name]
            queue = next((q for q in sqs.queues.values() if q.queue_arn == esm.event_source_arn), None)
            if queue is not None:
                yield backend, esm, sqs, queue

    # -- executor.Source ----------------------------------------------------------------------------
    def oldest(self) -> float | None:
        with self._lock:
            if self._dry == self._gen:
                return None
        ready = [t for *_, queue in self._active() if (t := _oldest_sent(queue)) is not None]
        return min(ready) if ready else None

    def take(self) -> tuple[Any, float] | None:
        with self._lock:
            gen = self._gen
        with self._receive_lock:
            ready = [(t, i, m) for i, m in enumerate(self._active()) if (t := _oldest_sent(m[3])) is not None]
            for since, _, (backend, esm, sqs, queue) in sorted(ready):
                messages = sqs.receive_message(
                    queue.name, esm.batch_size, 0, int(queue.visibility_timeout or 30), ["All"]
                )
                if messages:  # `since` was read before the receive, which moves the batch's visible_at on
                    return functools.partial(self._process, backend, esm, queue, messages), since
        with self._lock:
            if self._gen == gen:
                self._dry = gen
        return None

    # -- the clock ----------------------------------------------------------------------------------
    def run(self) -> None:
        while not self._stop_event.is_set():
            self._wake.clear()  # before looking: a wake-up while we look makes us look again
            due: float | None = None
            try:
                due = self.poll_once()
            except Exception:  # keep watching: one broken mapping must not stop the others
                log.exception("SQS poll failed")
            wait = self.max_wait if due is None else min(self.max_wait, max(0.001, due - time.time()))
            self._wake.wait(wait)

    def poll_once(self) -> float | None:
        """Wake the workers if a message of a mapped queue can be received now (time passing made it
        visible: nothing else tells them); return when (epoch s) the next in-flight or delayed one
        becomes visible, or None if none is waiting for time to pass."""
        self.polls += 1
        due: float | None = None
        ready = False
        for _, _, _, queue in self._active():
            ready = ready or bool(queue.messages)
            now_ms = time.time() * 1000
            for m in list(queue._messages):
                later = max(m.visible_at, m.delayed_until)
                if later >= now_ms and (due is None or later / 1000 < due):
                    due = later / 1000
        if ready:
            with self._lock:
                self._gen += 1
            self.executor.wake()
        return due

    def _process(self, backend: Any, esm: Any, queue: Any, messages: list[Any]) -> None:
        from moto.sqs.models import sqs_backends

        try:
            sqs = sqs_backends[backend.account_id][backend.region_name]
            event = {"Records": [_sqs_record(m, queue) for m in messages]}
            fn = backend.get_function(esm.function_arn)
            inv = self.executor.invoke(_function_spec(fn), event)
            if inv.errored:
                return  # the whole batch stays; it reappears after the visibility timeout
            failed: set[str] = set()
            if "ReportBatchItemFailures" in (esm.function_response_types or []):
                failed = _batch_item_failures(inv.payload, {m.id for m in messages})
            for m in messages:
                if m.id not in failed:
                    with contextlib.suppress(Exception):  # already gone (purged, deleted by handler)
                        sqs.delete_message(queue.name, m.receipt_handle)
        finally:
            self.wake()  # a FIFO group this batch held may be deliverable now


def _receivable_since(m: Any) -> float:
    """Epoch s since when message `m` could be received: its send, or the end of its DelaySeconds or of a
    visibility timeout it came back from (a package timer sent with a 20 s delay has not been waiting for a
    worker those 20 s: ordering and the queued seconds count from when it was due)."""
    return max(int(m.sent_timestamp or 0), float(m.delayed_until or 0), float(m.visible_at or 0)) / 1000


def _oldest_sent(queue: Any) -> float | None:
    """When (epoch s) the oldest message of `queue` a ReceiveMessage could return now became receivable."""
    pending = queue.pending_message_groups if queue.fifo_queue else set()
    since = [_receivable_since(m) for m in queue.messages if not (queue.fifo_queue and m.group_id in pending)]
    return min(since) if since else None


def _batch_item_failures(payload: str, ids: set[str]) -> set[str]:
    """Lambda's rules: a malformed response or an unknown/empty id fails the whole batch."""
    try:
        body = json.loads(payload)
    except ValueError:
        return ids
    if not isinstance(body, dict) or body.get("batchItemFailures") is None:
        return set()
    items = body["batchItemFailures"]
    if not isinstance(items, list):
        return ids
    failed = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in ids:
            return ids
        failed.add(ident)
    return failed


def _sqs_record(message: Any, queue: Any) -> dict[str, Any]:
    attributes = {
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "SentTimestamp": str(message.sent_timestamp),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if queue.fifo_queue:
        attributes["MessageGroupId"] = message.group_id
        attributes["MessageDeduplicationId"] = message.deduplication_id
    message_attributes = {
        name: {k[:1].lower() + k[1:]: v for k, v in value.items()}
        for name, value in (message.message_attributes or {}).items()
    }
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.queue_arn,
        "awsRegion": queue.region,
    }
