"""Reading component artifacts from (moto) S3 for the local Greengrass control plane."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from typing import Any

from edgekit.awsapi import error_code
from edgekit.local.greengrass.errors import InternalServerException, field_error
from edgekit.recipes import parse_s3_uri

__all__ = ["S3Artifacts"]


class S3Artifacts:
    """Reads artifacts from (moto) S3 and presigns downloads, with boto3."""

    def __init__(self, endpoint: str | None, region: str) -> None:
        self.endpoint = endpoint
        self.region = region
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint,
                    region_name=self.region,
                    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                        retries={"max_attempts": 2, "mode": "standard"},
                        connect_timeout=5,
                        read_timeout=60,
                    ),
                )
            return self._client

    def sha256_digest(self, uri: str, field: str) -> str:
        """Base64 SHA-256 of the object at ``uri`` (as Greengrass stores ``Digest``)."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = parse_s3_uri(uri)
        try:
            obj = self.client().get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = error_code(exc)
            if code in ("NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"):
                what = "bucket" if code == "NoSuchBucket" else "object"
                raise field_error(
                    field,
                    f"artifact {uri} was not found in S3 (no such {what}); upload it first "
                    f"(s3.upload_file(..., '{bucket}', '{key}')) or fix the URI",
                ) from None
            raise InternalServerException(f"reading artifact {uri} from S3 failed: {exc}") from exc
        except BotoCoreError as exc:
            raise InternalServerException(
                f"cannot reach S3 at {self.endpoint or 'AWS'} to read {uri}: {exc}; "
                "is the local moto server running?"
            ) from exc
        digest = hashlib.sha256()
        body = obj["Body"]
        try:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
        finally:
            body.close()
        return base64.b64encode(digest.digest()).decode("ascii")

    def presign(self, uri: str, expires: int = 3600) -> str:
        bucket, key = parse_s3_uri(uri)
        return self.client().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )
