"""`python -m devtools.localaws serve [--port N] [--state-dir .localaws]`: run the emulator in the foreground.

    python -m devtools.localaws serve --port 4566
    # then, in another shell: export the printed variables and use boto3 / the AWS CLI as usual.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .server import serve


def _delays(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seconds, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.localaws", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the emulator until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="loopback address only (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--state-dir", type=Path, default=Path(".localaws"), help="code cache and Lambda logs")
    p.add_argument("--workers", type=int, default=4, help="parallel asynchronous Lambda invocations")
    p.add_argument("--async-retry-delays", type=_delays, default=(1.0, 2.0),
                   help="seconds before each retry of a failed async invocation (AWS: 60,120)")
    p.add_argument("--cold", action="store_true",
                   help="a fresh process per invocation (default: reuse warm sandboxes, like Lambda)")
    args = parser.parse_args(argv)
    try:
        from .server import loopback_host

        loopback_host(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"Lambda logs: {args.state_dir.resolve()}/logs", file=sys.stderr)
    serve(args.host, args.port, args.state_dir.resolve(), workers=args.workers,
          async_retry_delays=args.async_retry_delays, warm=not args.cold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
