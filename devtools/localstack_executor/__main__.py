"""`python -m devtools.localstack_executor serve`: LocalStack (+ the built-in emulator for DynamoDB
and CloudFront) until Ctrl-C, printing the exports boto3 and the CLI need."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .launcher import LocalStackError, LocalStackSession


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.localstack_executor")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run LocalStack on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=0, help="gateway port (default: a free one)")
    serve.add_argument("--state-dir", type=Path, default=Path(".localstack"))
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    session = LocalStackSession(args.state_dir, port=args.port)
    try:
        session.start()
    except LocalStackError as exc:
        print(f"LocalStack did not start: {exc}", file=sys.stderr)
        return 1
    try:
        print(session.describe(), file=sys.stderr)
        print("export " + " ".join(f"{k}={v}" for k, v in session.env().items()), flush=True)
        stop.wait()
    finally:
        session.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
