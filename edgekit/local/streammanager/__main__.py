"""``python -m edgekit.local.streammanager serve``: the aws.greengrass.StreamManager process.

The settings come from the environment the component's recipe sets from its
configuration (the documented parameter names), or from the command line:

* ``STREAM_MANAGER_SERVER_PORT`` (``--port``, default 8088; 0 picks a free port),
* ``STREAM_MANAGER_STORE_ROOT_DIR`` (``--store-root``; relative to the working folder,
  which on the device is the component's ``{work:path}``),
* ``STREAM_MANAGER_AUTHENTICATE_CLIENT`` (``--authenticate-client``, default true: only
  components of the device, through its IPC socket),
* ``STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE`` (or ``STREAM_MANAGER_THREAD_POOL_SIZE``),
  ``STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES``, ``LOG_LEVEL``.
  ``STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH`` and ``JVM_ARGS`` are accepted and ignored.

Once bound, the port is written to the component's configuration key ``port`` (over
IPC, as on Greengrass: components read it with GetConfiguration). The port is bound
before anything else; a port in use ends the process (exit 1) with a
message naming the port, the device and the fix. With ``--daemon`` the process returns
once the port listens and the server goes on in a child process (the component's
Startup step: components that depend on the stream manager start only once it listens).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from awscrt.exceptions import AwsCrtError
from awsiot.eventstreamrpc import EventStreamError
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

from edgekit.local.streammanager.auth import IpcTokenValidator
from edgekit.local.streammanager.server import StreamManagerServer

COMPONENT = "aws.greengrass.StreamManager"
SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("false", "0", "no", "off")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{COMPONENT}: {name} must be an integer; got {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edgekit.local.streammanager")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the stream manager")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", default=_env("STREAM_MANAGER_SERVER_PORT", "8088"))
    serve.add_argument("--store-root", default=_env("STREAM_MANAGER_STORE_ROOT_DIR", "."))
    serve.add_argument(
        "--authenticate-client", default=_env("STREAM_MANAGER_AUTHENTICATE_CLIENT", "true")
    )
    serve.add_argument(
        "--threads",
        default=_env(
            "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE", _env("STREAM_MANAGER_THREAD_POOL_SIZE", "5")
        ),
    )
    serve.add_argument(
        "--min-part-size",
        default=_env(
            "STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES", "5242880"
        ),
    )
    serve.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    serve.add_argument("--daemon", action="store_true", help="return once the port listens")
    return parser


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        device = os.environ.get("AWS_IOT_THING_NAME", "this device")
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(
                f"{COMPONENT} on device {device}: port {port} on {host} is already in use "
                "(another local device's stream manager, or another program). Give this "
                f'device its own port: merge {{"STREAM_MANAGER_SERVER_PORT": "<free port>"}} '
                f"into {COMPONENT} in the deployment's configurationUpdate"
            ) from None
        raise SystemExit(
            f"{COMPONENT} on device {device}: cannot bind {host}:{port}: {exc}"
        ) from None
    sock.listen(128)
    return sock


def _publish_port(port: int) -> None:
    """Set ``port`` in the component's configuration (over IPC), as the docs describe:
    components read it with GetConfiguration when the port is not the default."""
    if not (os.environ.get(SOCKET_ENV) and os.environ.get("SVCUID")):
        return
    try:
        client = GreengrassCoreIPCClientV2()
        try:
            client.update_configuration(
                key_path=[], value_to_merge={"port": port}, timestamp=datetime.now(UTC)
            )
        finally:
            client.close()
    except (EventStreamError, AwsCrtError, OSError) as exc:
        print(f"{COMPONENT}: could not set its configuration key port to {port}: {exc}", flush=True)


async def _serve(server: StreamManagerServer, sock: socket.socket) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await server.serve(sock)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    port = _int(str(args.port), "STREAM_MANAGER_SERVER_PORT")
    threads = _int(str(args.threads), "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE")
    part = _int(str(args.min_part_size), "the multipart upload minimum part size")
    authenticate = None
    if _truthy(str(args.authenticate_client)):
        socket_path = os.environ.get(SOCKET_ENV)
        if not socket_path:
            raise SystemExit(
                f"{COMPONENT}: STREAM_MANAGER_AUTHENTICATE_CLIENT is true but {SOCKET_ENV} is not "
                "set: run it as a component of a local device, or set it to false"
            )
        authenticate = IpcTokenValidator(socket_path)
    sock = _bind(args.host, port)
    root = Path(args.store_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"{COMPONENT}: listening on {args.host}:{sock.getsockname()[1]}, streams in {root}, "
        f"client authentication {'on' if authenticate else 'off'}",
        flush=True,
    )
    for ignored in ("STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH", "JVM_ARGS"):
        if os.environ.get(ignored, "").strip():
            print(f"{COMPONENT}: {ignored} is ignored by the local stream manager", flush=True)
    port = sock.getsockname()[1]
    if args.daemon and os.fork() > 0:
        # The child serves (in the component's process group); the parent publishes the
        # port before the component counts as RUNNING, then returns.
        _publish_port(port)
        os._exit(0)
    if not args.daemon:
        _publish_port(port)
    server = StreamManagerServer(
        root, authenticate=authenticate, export_threads=threads, min_part_size=part
    )
    try:
        asyncio.run(_serve(server, sock))
    except Exception:
        # The component counts as RUNNING since its Startup step returned: tell the device
        # it failed, so it is restarted (recovered) as an errored component is.
        logging.getLogger(COMPONENT).exception("the stream manager stopped on an error")
        _report_errored()
        return 1
    return 0


def _report_errored() -> None:
    if not (os.environ.get(SOCKET_ENV) and os.environ.get("SVCUID")):
        return
    try:
        client = GreengrassCoreIPCClientV2()
        try:
            client.update_state(state="ERRORED")
        finally:
            client.close()
    except (EventStreamError, AwsCrtError, OSError) as exc:
        print(f"{COMPONENT}: could not report ERRORED to the device: {exc}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
