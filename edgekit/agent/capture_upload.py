"""The capture upload process: ``python -m edgekit.agent.capture_upload [--factory MODULE:NAME]``.

The model agent runs for the device's whole life, and boto3 with an S3 client holds some
37 MB of it for an upload every few seconds at most. So the agent does not import boto3:
when captures are due, :class:`edgekit.agent.capture.UploadProcess` starts this process,
hands it one capture at a time and closes it once nothing is due; it exits at the end of
its input.

Protocol, one JSON object per line. Request (stdin): ``{"bucket": B, "files": [[local path,
key], ...]}``; the files are put in order. Reply (stdout): ``{"keys": [...]}`` when all were
put, or ``{"error": "<exception type>: <message>"}`` at the first that failed, which the
agent records in the capture's ``last_error`` and retries as it would an in-process failure.

The S3 client comes from ``--factory`` (a function of no arguments, ``module:name``), called
at the first request; without it plain ``boto3.client("s3")``, which reads the credentials,
region and endpoint the device gives its components from the environment. Logs go to stderr,
so they land in the agent's log.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

import boto3

from edgekit.errors import ConfigurationError


def default_client() -> Any:
    """Plain boto3 S3 client from the environment (as the component's process has it)."""
    return boto3.client("s3")


def resolve_factory(spec: str | None) -> Callable[[], Any]:
    """The function ``module:name`` names (ConfigurationError naming the spec if not)."""
    if not spec:
        return default_client
    module_name, _, name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"capture upload: --factory {spec!r} does not name a function (module:name) that "
            f"this Python can import ({exc})"
        ) from exc
    if not callable(factory):
        raise ConfigurationError(f"capture upload: --factory {spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def serve(requests: TextIO, replies: TextIO, factory: Callable[[], Any]) -> None:
    """Answer every request line of ``requests`` on ``replies`` until end of input."""
    client: Any = None
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        keys: list[str] = []
        try:
            if client is None:
                client = factory()
            for path, key in request["files"]:
                with open(path, "rb") as body:
                    client.put_object(Bucket=request["bucket"], Key=key, Body=body)
                keys.append(key)
            reply: dict[str, Any] = {"keys": keys}
        except Exception as exc:  # the agent records it in capture.json and retries
            reply = {"error": f"{type(exc).__name__}: {exc}", "keys": keys}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgekit.agent.capture_upload",
        description="Put the model agent's capture files into S3 (run by the agent).",
    )
    parser.add_argument("--factory", help="module:name of a function returning the S3 client")
    args = parser.parse_args(argv)
    factory = resolve_factory(args.factory)
    replies = sys.stdout
    sys.stdout = sys.stderr  # a stray print must not corrupt the replies
    serve(sys.stdin, replies, factory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
