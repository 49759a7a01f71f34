"""What CloudFront's edge does for the demo origin: trusted-key-group checks and real-time logs.

- `TrustedKeys.authorize` accepts a request the way a cache behaviour with TrustedKeyGroups does:
  a signature in the query string (custom policy `Policy=`, or canned `Expires=`) wins over
  CloudFront-Policy / CloudFront-Signature / CloudFront-Key-Pair-Id cookies; the policy must be
  signed (RSA-SHA1, PKCS#1 v1.5) by a key of the group, its Resource must match the request URL
  (`*` any run of characters, `?` one), and DateLessThan / DateGreaterThan / IpAddress must hold.
  The signature parameters are not part of the URL that is matched (CloudFront strips them too).
- `RealtimeLog` appends one JSON object per request with CloudFront real-time log field names
  (`cs-uri-stem`, `sc-status`, ..., and the `cmcd-*` fields CloudFront extracts from CMCD), the
  input of `slipstream qoe`.
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from slipstream_cli.qoe import REALTIME_CMCD_FIELDS, cmcd_from_request

SIGNATURE_PARAMS = ("Policy", "Expires", "Signature", "Key-Pair-Id")
COOKIE_NAMES = ("CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    carrier: str  # "query", "cookie" or "" (no signature offered)
    reason: str = ""  # CloudFront's wording of the 403


def _cf_b64decode(value: str) -> bytes:
    return base64.b64decode(value.replace("-", "+").replace("_", "=").replace("~", "/"), validate=True)


def _matches(pattern: str, url: str) -> bool:
    # fnmatch's [...] classes are not part of CloudFront's syntax: escape them.
    escaped = re.sub(r"([\[\]])", r"[\1]", pattern)
    return fnmatch.fnmatchcase(url, escaped)


class TrustedKeys:
    """The public keys of one trusted key group: {Key-Pair-Id: PEM}."""

    def __init__(self, public_keys_pem: Mapping[str, str]) -> None:
        from cryptography.hazmat.primitives import serialization

        self._keys = {kid: serialization.load_pem_public_key(pem.encode()) for kid, pem in public_keys_pem.items()}

    def authorize(self, url: str, cookies: Mapping[str, str], client_ip: str = "127.0.0.1",
                  now: float | None = None) -> Verdict:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        signed = {k: v for k, v in query if k in SIGNATURE_PARAMS}
        rest = urlencode([(k, v) for k, v in query if k not in SIGNATURE_PARAMS])
        resource = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
        if signed:
            carrier = "query"
            key_id, signature = signed.get("Key-Pair-Id", ""), signed.get("Signature", "")
            if "Policy" in signed:
                policy_b64: str | None = signed["Policy"]
            elif "Expires" in signed:
                policy_b64 = None
                canned = {"Statement": [{"Resource": resource, "Condition": {
                    "DateLessThan": {"AWS:EpochTime": int(signed["Expires"]) if signed["Expires"].isdigit() else -1}}}]}
                raw = json.dumps(canned, separators=(",", ":")).encode()
            else:
                return Verdict(False, carrier, "Missing Policy or Expires query parameter")
        elif any(name in cookies for name in COOKIE_NAMES):
            carrier = "cookie"
            key_id, signature = cookies.get("CloudFront-Key-Pair-Id", ""), cookies.get("CloudFront-Signature", "")
            policy_b64 = cookies.get("CloudFront-Policy", "")
        else:
            return Verdict(False, "", "Missing Key-Pair-Id query parameter or cookie value")
        if not key_id:
            return Verdict(False, carrier, "Missing Key-Pair-Id query parameter or cookie value")
        key = self._keys.get(key_id)
        if key is None:
            return Verdict(False, carrier, "Unknown Key")
        try:
            if policy_b64 is not None:
                raw = _cf_b64decode(policy_b64)
            statement = json.loads(raw)["Statement"][0]
            sig = _cf_b64decode(signature)
        except (ValueError, KeyError, IndexError, TypeError):
            return Verdict(False, carrier, "Malformed Policy")
        if not self._verify(key, sig, raw):
            return Verdict(False, carrier, "Access denied")  # CloudFront does not say why
        return self._check(statement, resource, client_ip, time.time() if now is None else now, carrier)

    @staticmethod
    def _verify(key: Any, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA1())
        except InvalidSignature:
            return False
        return True

    @staticmethod
    def _check(statement: Mapping[str, Any], resource: str, client_ip: str, now: float, carrier: str) -> Verdict:
        condition = statement.get("Condition", {})
        try:
            pattern = str(statement.get("Resource", ""))
            less = float(condition["DateLessThan"]["AWS:EpochTime"])
            greater = condition.get("DateGreaterThan", {}).get("AWS:EpochTime")
            network = condition.get("IpAddress", {}).get("AWS:SourceIp")
        except (KeyError, TypeError, ValueError, AttributeError):
            return Verdict(False, carrier, "Malformed Policy")
        if not _matches(pattern, resource):
            return Verdict(False, carrier, "Access denied")
        if now >= less or (greater is not None and now <= float(greater)):
            return Verdict(False, carrier, "Access denied")
        if network and ipaddress.ip_address(client_ip) not in ipaddress.ip_network(str(network), strict=False):
            return Verdict(False, carrier, "Access denied")
        return Verdict(True, carrier)


class RealtimeLog:
    """JSON lines, one per request, named like CloudFront real-time log fields ("-" when absent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, *, method: str, host: str, path: str, query: str, status: int, size: int, seconds: float,
              client_ip: str, user_agent: str, content_type: str, headers: Mapping[str, str],
              grant: str = "") -> dict[str, str]:
        cmcd = cmcd_from_request(query, headers)
        record = {
            "timestamp": f"{time.time():.3f}",
            "c-ip": client_ip,
            "cs-method": method,
            "cs-host": host,
            "cs-uri-stem": path,
            "cs-uri-query": query or "-",
            "sc-status": f"{status:03d}" if status == 0 else str(status),
            "sc-bytes": str(size),
            "time-taken": f"{seconds:.3f}",
            "cs-user-agent": user_agent or "-",
            "sc-content-type": content_type or "-",
            "x-edge-detailed-result-type": "Error" if status >= 400 else "ClientCommError" if status == 0 else "Miss",
            # Not a CloudFront field: which carrier authorised the request on a signing demo.
            "x-slipstream-grant": grant or "-",
        }
        for key, field in REALTIME_CMCD_FIELDS.items():
            record[field] = cmcd.get(key, "-")
        line = json.dumps(record, separators=(",", ":"))
        with self._lock, self.path.open("a") as f:
            f.write(line + "\n")
        return record
