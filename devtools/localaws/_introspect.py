"""Print, as JSON, the Lambda functions a Chalice app defines (run by deploy.py in a subprocess).

A subprocess so importing the app (and its chalicelib) never pollutes the caller's sys.modules or
picks up the caller's environment; two apps with a `chalicelib` package can be deployed in one run.
usage: python _introspect.py APP_DIR
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any


def describe(app_dir: str) -> dict[str, Any]:
    sys.path.insert(0, app_dir)
    module = importlib.import_module("app")
    app = module.app
    from chalice import app as chalice_app

    functions: list[dict[str, Any]] = []
    for source in app.event_sources:
        entry: dict[str, Any] = {"name": source.name, "handler": source.handler_string}
        if isinstance(source, chalice_app.S3EventConfig):
            entry.update(kind="s3", bucket=source.bucket, events=source.events,
                         prefix=source.prefix, suffix=source.suffix)
        elif isinstance(source, chalice_app.SQSEventConfig):
            entry.update(kind="sqs", queue=source.queue, queue_arn=source.queue_arn,
                         batch_size=source.batch_size,
                         batching_window=source.maximum_batching_window_in_seconds)
        elif isinstance(source, chalice_app.ScheduledEventConfig):
            expr = source.schedule_expression
            entry.update(kind="schedule", schedule=expr if isinstance(expr, str) else expr.to_string())
        elif isinstance(source, chalice_app.CloudWatchEventConfig):
            entry.update(kind="eventbridge", event_pattern=source.event_pattern)
        else:
            entry.update(kind="unsupported", type=type(source).__name__)
        functions.append(entry)
    for fn in app.pure_lambda_functions:
        functions.append({"name": fn.name, "handler": fn.handler_string, "kind": "pure"})
    return {"app_name": app.app_name, "functions": functions, "has_routes": bool(app.routes)}


if __name__ == "__main__":
    print(json.dumps(describe(sys.argv[1])))
