"""Entry point: `python -m slipstream_cli ...` and the `slipstream` console script."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from . import __version__
from .client import ApiClient, CliError, Transport, urllib_transport
from .commands import add_parsers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slipstream", description="Operate Slipstream live channels.")
    parser.add_argument("--endpoint", default=os.environ.get("SLIPSTREAM_API_URL", ""),
                        help="control API base URL (default: $SLIPSTREAM_API_URL)")
    # dest differs from push's own --api-key: argparse lets a subparser's default overwrite a
    # top-level value of the same dest, which would silently drop `slipstream --api-key K push`.
    parser.add_argument("--api-key", dest="global_api_key", metavar="KEY",
                        default=os.environ.get("SLIPSTREAM_API_KEY", ""),
                        help="API key (default: $SLIPSTREAM_API_KEY; none: SigV4 with AWS credentials)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", ""), help="region for SigV4 signing")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a summary")
    parser.add_argument("--version", action="version", version=f"slipstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parsers(sub)
    # The pipeline's `push` subcommand ships in its own module; load it when installed.
    if importlib.util.find_spec("slipstream_cli.push") is not None:
        importlib.import_module("slipstream_cli.push").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, transport: Transport = urllib_transport) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "needs_api", False):
        # Subcommands from other modules (push) take only their arguments; share the global key.
        if hasattr(args, "api_key") and not args.api_key:
            args.api_key = args.global_api_key
        return int(args.func(args))
    try:
        api = ApiClient(args.endpoint, args.global_api_key, region=args.region, transport=transport)
        return int(args.func(args, api))
    except CliError as e:
        print(f"slipstream: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
