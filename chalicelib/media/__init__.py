"""Pure media core: no boto3, no environment. Text and bytes in, dataclasses out."""
