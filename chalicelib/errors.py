"""Domain errors. Every one ends in `Error`; `chalicelib.control.http` maps them to HTTP once."""

from __future__ import annotations


class SlipstreamError(Exception):
    """Base of all domain errors. The message is safe to show to API clients."""


class ValidationError(SlipstreamError):
    """Input is malformed (bad JSON, wrong type, out of range, hostile id)."""


class NotFoundError(SlipstreamError):
    """A channel, ad break or object does not exist."""


class ConflictError(SlipstreamError):
    """The request is illegal in the current state (e.g. start a running channel)."""


class BreakStateError(ConflictError):
    """An ad-break request that its break's state does not allow; `details` (state, phase) go in the body."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details


class StateTransitionError(ConflictError):
    """A lifecycle transition that the state machine does not allow."""


class UnauthorizedError(SlipstreamError):
    """Missing or wrong credentials."""


class InvalidMediaError(SlipstreamError):
    """A source chunk failed validation (wrong container, no video, truncated, absurd)."""


class TranscodeError(SlipstreamError):
    """ffmpeg failed or timed out on a chunk that passed validation."""


class StoreError(SlipstreamError):
    """A storage backend failed in a way the caller cannot fix (wraps ClientError)."""


class ConcurrentUpdateError(StoreError):
    """A conditional write lost a race; the caller re-reads and retries."""


def aws_error_code(e: BaseException) -> str:
    """The service's error code of a botocore ClientError ("" for anything else). Adapters use it
    to turn the few codes they expect into domain errors; reading it needs no boto import."""
    response = getattr(e, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
