"""Request accounting for the emulator: what each caller asked of which service, and what it cost.

Every AWS request the server answers is counted by (caller, service, operation): the caller is the
access key id of the request's signature (Lambdas sign with "test"; a bench can sign with its own
key to keep its requests apart), the service the signing scope's, the operation the X-Amz-Target's
action or, for the REST services (S3, Lambda, CloudFront), one derived from method, path and query.
Each entry also sums the server's wall and CPU time (the handling thread's) spent on those requests.

    GET /_localaws/stats                 -> {"requests": [...], "invocations": {...}, "pid": ..., ...}
    GET /_localaws/s3-writes?after=N     -> the object writes after write number N (newest 1024 kept),
                                            manifests (.m3u8, .mpd) with their text: a watcher sees each
                                            playlist version as it is written, without polling S3.

Nothing here changes what a request does; it only counts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote

PREFIX = "/_localaws/"
# Manifests are small text objects a stream watcher wants to read as they change; media is not kept.
TEXT_SUFFIXES = (".m3u8", ".mpd")
MAX_TEXT = 512 * 1024

StartResponse = Callable[..., Any]

# S3 bucket sub-resources (query keys) that name the operation, in the order S3's API reference lists them.
_S3_SUBRESOURCES = (
    "notification", "versioning", "policy", "cors", "lifecycle", "tagging", "acl", "location", "website",
    "encryption", "logging", "replication", "ownershipControls", "publicAccessBlock", "object-lock",
    "accelerate", "requestPayment", "analytics", "inventory", "metrics", "intelligent-tiering",
)  # fmt: skip


def caller_service(environ: dict[str, Any]) -> tuple[str, str]:
    """(access key id, signing service) from a SigV4 Authorization header or a presigned query."""
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    scope = ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
    elif "X-Amz-Credential=" in (environ.get("QUERY_STRING") or ""):
        for k, v in parse_qsl(environ.get("QUERY_STRING") or ""):
            if k == "X-Amz-Credential":
                scope = v
                break
    parts = scope.split("/")
    if len(parts) >= 5:
        return parts[0], parts[3].lower()
    return "-", "-"


def s3_operation(method: str, path: str, query: str, copy_source: bool = False) -> str:
    """The S3 API operation of a path-style request (boto3 against an IP endpoint uses path style)."""
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    q = parse_qs(query, keep_blank_values=True)
    if not bucket:
        return "ListBuckets"
    if key:
        if "uploadId" in q:
            return {"PUT": "UploadPart", "GET": "ListParts", "DELETE": "AbortMultipartUpload",
                    "POST": "CompleteMultipartUpload"}.get(method, method)
        sub = next((s for s in ("tagging", "acl", "retention", "legal-hold", "attributes") if s in q), "")
        name = "".join(p.title() for p in sub.split("-"))
        if method == "PUT":
            return f"PutObject{name}" if sub else ("CopyObject" if copy_source else "PutObject")
        if method == "POST":
            return "CreateMultipartUpload" if "uploads" in q else "PostObject"
        verb = {"GET": "Get", "HEAD": "Head", "DELETE": "Delete"}.get(method, method.title())
        return f"{verb}Object{name}"
    if method == "GET" and q.get("list-type") == ["2"]:
        return "ListObjectsV2"
    if method == "GET" and "versions" in q:
        return "ListObjectVersions"
    if method == "GET" and "uploads" in q:
        return "ListMultipartUploads"
    if method == "POST" and "delete" in q:
        return "DeleteObjects"
    sub = next((s for s in _S3_SUBRESOURCES if s in q), "")
    name = "".join(p[:1].upper() + p[1:] for p in sub.split("-"))
    if sub:
        return {"GET": "GetBucket", "PUT": "PutBucket", "DELETE": "DeleteBucket"}.get(method, method) + name
    return {"GET": "ListObjects", "HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(
        method, method
    )


def rest_operation(service: str, method: str, path: str) -> str:
    """Operations of the REST-JSON/XML services the pipeline and the deployer use; else METHOD /first/part."""
    parts = [p for p in path.split("/") if p]
    if service == "lambda":
        if path.endswith("/invocations"):
            return "Invoke"
        if len(parts) >= 2 and parts[1] == "functions":
            tail = parts[3] if len(parts) > 3 else ""
            names = {"": "Function", "code": "FunctionCode", "configuration": "FunctionConfiguration",
                     "event-invoke-config": "FunctionEventInvokeConfig", "policy": "Policy"}
            verb = {"GET": "Get", "PUT": "Update", "POST": "Create", "DELETE": "Delete"}.get(method, method)
            if method == "POST" and tail == "policy":
                return "AddPermission"
            return verb + names.get(tail, tail.title()) if len(parts) > 2 else verb + "Functions"
    if service == "cloudfront" and "invalidation" in parts:
        if method == "POST":
            return "CreateInvalidation"
        return "GetInvalidation" if parts[-1] != "invalidation" else "ListInvalidations"
    return f"{method} /{'/'.join(parts[:2])}"


def classify(environ: dict[str, Any]) -> tuple[str, str, str]:
    """(caller, service, operation) of one WSGI request."""
    caller, service = caller_service(environ)
    target = environ.get("HTTP_X_AMZ_TARGET") or ""
    method = str(environ.get("REQUEST_METHOD") or "GET")
    path = str(environ.get("PATH_INFO") or "/")
    query = str(environ.get("QUERY_STRING") or "")
    if target:
        op = target.rsplit(".", 1)[-1]
    elif service == "s3" or service == "-":
        service = "s3" if service == "-" else service
        op = s3_operation(method, path, query, bool(environ.get("HTTP_X_AMZ_COPY_SOURCE")))
    elif "Action=" in query:
        op = dict(parse_qsl(query)).get("Action", method)
    else:
        op = rest_operation(service, method, path)
    return caller, service, op


@dataclass
class _Tally:
    count: int = 0
    errors: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


class RequestStats:
    """Thread-safe counters by (caller, service, operation), and the ring of recent S3 object writes."""

    def __init__(self, max_writes: int = 1024) -> None:
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str, str], _Tally] = {}
        self._writes: deque[dict[str, Any]] = deque(maxlen=max_writes)
        self._write_no = 0
        self.started = time.time()

    def record(self, key: tuple[str, str, str], status: int, wall_s: float, cpu_s: float) -> None:
        with self._lock:
            t = self._tallies.get(key)
            if t is None:
                t = self._tallies[key] = _Tally()
            t.count += 1
            t.errors += status >= 400
            t.wall_s += wall_s
            t.cpu_s += cpu_s

    def object_written(self, bucket: str, key: str, size: int, etag: str, body: Callable[[], bytes]) -> None:
        entry: dict[str, Any] = {"time": time.time(), "bucket": bucket, "key": key, "size": size, "etag": etag}
        if key.endswith(TEXT_SUFFIXES) and size <= MAX_TEXT:
            entry["text"] = body().decode("utf-8", errors="replace")
        with self._lock:
            self._write_no += 1
            entry["n"] = self._write_no
            self._writes.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            items = sorted(self._tallies.items())
        return [
            {"caller": c, "service": s, "operation": o, "count": t.count, "errors": t.errors,
             "wall_s": round(t.wall_s, 6), "cpu_s": round(t.cpu_s, 6)}
            for (c, s, o), t in items
        ]

    def writes(self, after: int = 0, bucket: str = "") -> dict[str, Any]:
        with self._lock:
            newest = self._write_no
            out = [w for w in self._writes if w["n"] > after and (not bucket or w["bucket"] == bucket)]
            oldest = self._writes[0]["n"] if self._writes else newest + 1
        # `lost`: writes after `after` that fell out of the ring before this call (poll more often).
        return {"last": newest, "lost": max(0, oldest - after - 1) if after < oldest else 0, "writes": out}


class Accounting:
    """WSGI middleware in front of moto: counts every request and serves /_localaws/*."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], stats: RequestStats,
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.app = app
        self.stats = stats
        self.extra = extra

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith(PREFIX):
            return self._serve(path[len(PREFIX):], environ, start_response)
        key = classify(environ)
        status = [500]

        def start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = int(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info) if exc_info else start_response(code, headers)

        cpu0, wall0 = time.thread_time(), time.perf_counter()
        try:
            return self.app(environ, start)
        finally:
            self.stats.record(key, status[0], time.perf_counter() - wall0, time.thread_time() - cpu0)

    def _serve(self, what: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        q = dict(parse_qsl(str(environ.get("QUERY_STRING") or "")))
        doc: dict[str, Any]
        if what == "stats":
            doc = {"time": time.time(), "since": self.stats.started, "requests": self.stats.requests()}
            if self.extra is not None:
                doc.update(self.extra())
        elif what == "s3-writes":
            try:
                after = int(q.get("after", "0"))
            except ValueError:
                after = -1
            if after < 0:
                return _reply(start_response, "400 Bad Request", {"error": "after: expected a write number >= 0"})
            doc = self.stats.writes(after, q.get("bucket", ""))
        else:
            return _reply(start_response, "404 Not Found",
                          {"error": f"no {PREFIX}{what}: try {PREFIX}stats or {PREFIX}s3-writes"})
        return _reply(start_response, "200 OK", doc)


def _reply(start_response: StartResponse, status: str, doc: dict[str, Any]) -> list[bytes]:
    body = json.dumps(doc).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
