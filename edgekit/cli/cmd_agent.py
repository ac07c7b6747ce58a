"""``edgekit agent``: run the model agent, or talk to a running one."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any

from edgekit.errors import ConfigurationError

SOCKET_HELP = (
    "the agent's unix socket (default: agent.sock in this user's private folder, "
    "$XDG_RUNTIME_DIR/edgekit or /tmp/edgekit-<uid>, created 0700 and checked)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="the on-device model agent (SageMaker Edge Manager agent API over gRPC)",
        description="Serve verified model packages over the SageMaker Edge Manager agent's "
        "gRPC API on a unix socket, or call a running agent.",
    )
    sub = parser.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the agent in the foreground until SIGTERM/SIGINT",
        description="Serve the Edge Manager agent's gRPC API on a Unix socket, loading only "
        "model packages signed by --public-key; stop with SIGTERM or Ctrl-C.",
    )
    serve.add_argument("--socket", help=SOCKET_HELP)
    serve.add_argument(
        "--public-key", required=True, help="PEM public key that model packages must be signed by"
    )
    serve.add_argument(
        "--additional-public-keys",
        metavar="FILE",
        help="PEM bundle of more public keys packages may be signed by (may be empty); the "
        "identity a model reports names the key that verified it",
    )
    serve.add_argument("--capture-dir", help="folder for CaptureData (enables capture)")
    serve.add_argument("--capture-bucket", help="S3 bucket to upload captures to")
    serve.add_argument("--capture-prefix", default="", help="S3 key prefix for captures")
    serve.add_argument(
        "--capture-attempts", type=int, default=8, help="upload attempts before FAILURE"
    )
    serve.add_argument("--workers", type=int, default=8, help="gRPC worker threads")
    serve.add_argument(
        "--intra-op-threads",
        type=int,
        default=0,
        help="ONNX Runtime threads per model (0: ONNX Runtime's default)",
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )
    serve.set_defaults(handler=_serve)

    for name, help_text, description in (
        ("list", "list the loaded models", "ListModels on a running agent."),
        (
            "load",
            "load a model package",
            "LoadModel on a running agent: it verifies the package's signature first.",
        ),
        ("unload", "unload a model", "UnloadModel on a running agent."),
        ("describe", "describe a loaded model", "DescribeModel on a running agent."),
    ):
        cmd = sub.add_parser(name, help=help_text, description=description)
        cmd.add_argument("--socket", help=SOCKET_HELP)
        if name != "list":
            cmd.add_argument("name", help="model name")
        if name == "load":
            cmd.add_argument("url", help="package path (.tar.gz or folder) or file:// URL")
        cmd.set_defaults(handler=_call)


def capture_s3_client() -> Any:
    """The S3 client for capture uploads: edgekit's backend-aware factory.

    Called in the capture upload process (``python -m edgekit.agent.capture_upload
    --factory edgekit.cli.cmd_agent:capture_s3_client``), so the agent never imports boto3.
    """
    from edgekit.clients import client
    from edgekit.settings import Settings

    return client("s3", Settings.from_env())


def _serve(args: argparse.Namespace) -> int:
    from edgekit.agent.capture import CaptureUploader, UploadProcess
    from edgekit.agent.heap import HeapTrimmer
    from edgekit.agent.paths import default_socket
    from edgekit.agent.server import AgentServer

    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.capture_bucket and not args.capture_dir:
        raise ConfigurationError("--capture-bucket needs --capture-dir (where captures wait)")
    uploader = None
    if args.capture_bucket:
        uploader = CaptureUploader(
            UploadProcess(f"{__name__}:{capture_s3_client.__name__}"),
            args.capture_bucket,
            args.capture_prefix,
            max_attempts=args.capture_attempts,
        )
    server = AgentServer(
        args.socket or default_socket(),
        args.public_key,
        capture_dir=args.capture_dir,
        capture_uploader=uploader,
        max_workers=args.workers,
        intra_op_threads=args.intra_op_threads,
        additional_public_keys=args.additional_public_keys,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        logging.getLogger("edgekit.agent").info("signal %d: shutting down", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(f"edgekit agent: serving on {server.target}", file=sys.stderr, flush=True)
        trimmer = HeapTrimmer()  # a model load leaves ~10 MB freed in the C heap
        while not stop.wait(1.0):
            trimmer.tick()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _call(args: argparse.Namespace) -> int:
    from edgekit.agent.client import AgentClient
    from edgekit.agent.paths import default_socket

    with AgentClient(args.socket or default_socket()) as client:
        if args.agent_command == "list":
            models = client.list_models()
        elif args.agent_command == "load":
            models = [client.load_model(args.name, args.url)]
        elif args.agent_command == "describe":
            models = [client.describe_model(args.name)]
        else:
            client.unload_model(args.name)
            print(f"unloaded {args.name}")
            return 0
    for model in models:
        print(
            json.dumps(
                {
                    "name": model.name,
                    "url": model.url,
                    "inputs": [
                        {"name": t.name, "dtype": str(t.dtype), "shape": list(t.shape)}
                        for t in model.inputs
                    ],
                    "outputs": [
                        {"name": t.name, "dtype": str(t.dtype), "shape": list(t.shape)}
                        for t in model.outputs
                    ],
                }
            )
        )
    return 0
