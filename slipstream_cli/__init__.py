"""`slipstream`: the operator CLI over the control API.

    slipstream --endpoint URL --api-key KEY create news --name "News 24"
    slipstream start news            # console entry (pyproject [project.scripts]; `pip install .`)
    slipstream ad-break news 30      # a 30 s break now
    slipstream status news

Endpoint and key default to $SLIPSTREAM_API_URL and $SLIPSTREAM_API_KEY. Without a key,
requests are SigV4-signed with the ambient AWS credentials (stages that use IAM auth).
The package is stdlib only and imports nothing from chalicelib (the wheel ships this package
alone): boto3/botocore come with the `aws` extra, a static ffmpeg with the `ffmpeg` extra.
Subcommands from other modules: `slipstream_cli.push:add_parser(subparsers)` is loaded when present;
it sets `func(args) -> int` (exit code). The built-in commands set `needs_api=True` and get an
`ApiClient` as a second argument. A global `--api-key` is copied into a subcommand's empty
`args.api_key`.
"""

__version__ = "0.1.0"
