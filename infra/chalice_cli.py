"""`chalice`, polling AWS every second where chalice polls every 5 s, with the same total patience.

`make deploy` / `make destroy` run chalice through this (infra/deploy.sh, infra/destroy.sh). chalice waits
for each Lambda function to be Active / Updated with botocore's FunctionActive / FunctionUpdated waiters
(one GetFunctionConfiguration every 5 s, 60 tries), and retries a settling call (an event source mapping
still in use, an IAM role Lambda cannot assume yet) every 5 s. An update is usually done within a second
or two, so every function of the stage paid a whole 5 s per wait: chalice's step of `make deploy` took
41-50 s into LocalStack, and `chalice delete` 52 s. Here the same waiters and retries poll every second,
with five times the tries: the same acceptors, the same errors, the same total time before giving up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

POLL = 1  # seconds between two polls


def install() -> None:
    """Patch chalice's AWS client (idempotent)."""
    from chalice import awsclient

    client: Any = awsclient.TypedAWSClient
    if getattr(client, "_slipstream_poll", None) == POLL:
        return
    retries = client._call_client_method_with_retries
    default_delay = int(client.DELAY_TIME)

    def _call_client_method_with_retries(self: Any, method: Any, kwargs: Any, max_attempts: int,
                                         should_retry: Any = None, delay_time: int = default_delay,
                                         retryable_exceptions: Any = None) -> Any:
        scale = max(1, round(delay_time / POLL))
        return retries(self, method, kwargs, max_attempts * scale, should_retry, POLL, retryable_exceptions)

    def _wait(self: Any, waiter_name: str, function_name: str) -> None:
        waiter = self._client("lambda").get_waiter(waiter_name)
        config = waiter.config  # botocore's own: delay 5 s, 60 attempts for these two
        waiter.wait(FunctionName=function_name,
                    WaiterConfig={"Delay": POLL, "MaxAttempts": int(config.max_attempts * config.delay / POLL)})

    client._call_client_method_with_retries = _call_client_method_with_retries
    client._wait_for_active = lambda self, function_name: _wait(self, "function_active", function_name)
    client._wait_for_function_update = lambda self, function_name: _wait(self, "function_updated", function_name)
    client._slipstream_poll = POLL


def main() -> int:
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run as a script: infra/ must not shadow anything chalice or the app imports
    sys.argv[0] = "chalice"
    install()
    from chalice.cli import main as chalice_main

    return int(chalice_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
