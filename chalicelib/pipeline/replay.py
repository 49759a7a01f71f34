"""Replay dead-lettered jobs: move messages from a queue's DLQ back to the queue.

    python -m chalicelib.pipeline.replay --queue slipstream-{stage}-transcode [--max 100] [--dry-run]

The DLQ is found from the queue's RedrivePolicy, so nobody has to know its name. Each message is
sent to the source queue before it is deleted from the DLQ (a crash in between duplicates a
job, which the workers tolerate, rather than losing one). SQS's own StartMessageMoveTask does
the same on AWS but is missing from emulators, hence this portable loop.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import NotFoundError, ValidationError


def dlq_url(sqs: Any, queue_url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
    policy = attrs.get("RedrivePolicy")
    if not policy:
        raise NotFoundError(f"queue {queue_url} has no dead-letter queue (no RedrivePolicy)")
    arn = str(json.loads(policy)["deadLetterTargetArn"])
    name, account = arn.split(":")[-1], arn.split(":")[-2]
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def replay_dlq(sqs: Any, queue_url: str, max_messages: int = 1000, dry_run: bool = False) -> int:
    """Move up to `max_messages` from the DLQ of `queue_url` back to it; returns how many."""
    if max_messages < 1:
        raise ValidationError("max_messages must be at least 1")
    source = dlq_url(sqs, queue_url)
    if dry_run:
        # Counted, not received: receiving would hide the messages for the visibility timeout.
        attrs = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["ApproximateNumberOfMessages"])
        return min(max_messages, int(attrs["Attributes"]["ApproximateNumberOfMessages"]))
    moved = 0
    while moved < max_messages:
        resp = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=min(10, max_messages - moved),
                                   WaitTimeSeconds=0, VisibilityTimeout=30)
        batch = resp.get("Messages", [])
        if not batch:
            break
        for m in batch:
            sqs.send_message(QueueUrl=queue_url, MessageBody=m["Body"])
            sqs.delete_message(QueueUrl=source, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
    return moved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chalicelib.pipeline.replay", description=__doc__.splitlines()[0])
    ap.add_argument("--queue", required=True, help="queue name (slipstream-{stage}-transcode) or URL")
    ap.add_argument("--max", type=int, default=1000, dest="max_messages")
    ap.add_argument("--dry-run", action="store_true", help="only count what would move")
    args = ap.parse_args(argv)
    from .. import root

    sqs = root.client("sqs")
    url = args.queue if "://" in args.queue else sqs.get_queue_url(QueueName=args.queue)["QueueUrl"]
    try:
        n = replay_dlq(sqs, url, args.max_messages, args.dry_run)
    except (NotFoundError, ValidationError) as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2
    print(f"{'would move' if args.dry_run else 'moved'} {n} message(s) back to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
