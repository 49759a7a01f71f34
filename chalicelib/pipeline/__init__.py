"""The event-driven pipeline: ingest -> transcode -> package -> publish (issue #5).

Modules are nouns: `events` (parse triggers), `clock` (media time), `assemble` (timeline
from stored state, pure), `store` (DynamoDB), `objects` (S3), `cdn` (CloudFront),
`ingest`/`worker`/`publish` (the three use cases), `replay` (DLQ), `obs` (Powertools).
"""
