"""Slipstream: serverless live video (ingest -> transcode -> package -> origin/CDN)."""
