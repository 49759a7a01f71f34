"""The plux plugin LocalStack's Lambda service finds by LAMBDA_RUNTIME_EXECUTOR=slipstream.

Loaded only inside LocalStack's own venv (Python 3.13): the entry point in this folder's
pyproject.toml names this class in the group `localstack.lambda.runtime_executor`.
"""

from __future__ import annotations

from typing import Any

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class SlipstreamExecutorPlugin(RuntimeExecutorPlugin):
    name = "slipstream"

    def load(self, *args: Any, **kwargs: Any) -> Any:
        from .executor import SubprocessRuntimeExecutor

        return SubprocessRuntimeExecutor
