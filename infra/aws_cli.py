"""The `aws` CLI, with its CloudFormation waiters polling every 5 s instead of every 30 s (same patience).

infra/common.sh runs every `aws` command of `make deploy` / `make destroy` through this. `aws cloudformation
deploy` waits for a stack to be created or updated with one DescribeStacks every 30 s (120 tries), and `aws
cloudformation wait ...` with the waiters' own 30 s: a stack operation that takes 3 s costs 30 s (LocalStack:
the stack's creation and its update in `make deploy`, the failed creation of the deploy test). Here any
waiter that would sleep longer than POLL between two polls sleeps POLL, with the tries scaled so it gives
up after the same time. POLL = 5 s is the CLI's own pace for change sets (0.2 DescribeStacks per second,
far below CloudFormation's API limits). The acceptors, errors and output are the CLI's own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

POLL = 5  # seconds between two polls, at most


def install() -> None:
    """Patch botocore's waiters (idempotent)."""
    from botocore import waiter

    cls: Any = waiter.Waiter
    if getattr(cls, "_slipstream_poll", None) == POLL:
        return
    wait = cls.wait

    def paced(self: Any, **kwargs: Any) -> None:
        config = dict(kwargs.pop("WaiterConfig", None) or {})
        delay = float(config.get("Delay", self.config.delay))
        attempts = int(config.get("MaxAttempts", self.config.max_attempts))
        if delay > POLL:
            config["Delay"], config["MaxAttempts"] = POLL, int(attempts * delay / POLL)
        return wait(self, WaiterConfig=config, **kwargs)

    cls.wait = paced
    cls._slipstream_poll = POLL


def main() -> int:
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run as a script: infra/ must not shadow anything the CLI imports
    if os.environ.get("LC_CTYPE", "") == "UTF-8":  # as the CLI's own `aws` script does
        os.environ["LC_CTYPE"] = "en_US.UTF-8"
    install()
    import awscli.clidriver

    return int(awscli.clidriver.main() or 0)


if __name__ == "__main__":
    sys.exit(main())
