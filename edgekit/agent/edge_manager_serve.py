"""Run the SageMaker Edge Manager stand-in: ``python -m edgekit.agent.edge_manager_serve``.

The Run step of ``aws.greengrass.SageMakerEdgeManager`` on the local device
(:mod:`edgekit.agent.edge_manager` writes the recipe). It reads the component's
configuration from the environment, checks where it may listen, and serves edgekit's
agent on ``UnixSocketName`` until SIGTERM.

The socket. Client code reads ``UnixSocketName`` with GetConfiguration and connects
there, so the agent listens exactly there (default
``/tmp/aws.greengrass.SageMakerEdgeManager.sock``, as on a real core device). The
agent's socket rules still apply to the folder (:mod:`edgekit.agent.paths` for the
paths edgekit picks itself): it must be a real directory (not a symbolic link) owned by
this user or root, and one other users cannot write unless it is sticky like ``/tmp``
(then nobody else can remove or replace our socket, but another local user can take the
name first: the log says so, and a private folder is the fix). A name another process
already serves on (a second local device with the same default, or a real Edge Manager
agent) is never taken over: the agent stops with an error naming the path and the
configuration change that fixes it.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import sys
import threading
from pathlib import Path

from edgekit.agent.capture import CaptureUploader, UploadProcess
from edgekit.agent.edge_manager import COMPONENT_NAME, EdgeManagerConfig, read_config
from edgekit.agent.heap import HeapTrimmer
from edgekit.agent.server import AgentServer
from edgekit.errors import AgentError, ConfigurationError, EdgekitError
from edgekit.files import write_text_atomic
from edgekit.package import load_public_key
from edgekit.unix_socket import clear_stale_socket

log = logging.getLogger("edgekit.agent.edge_manager")

PUBLIC_KEY_FILE = "sme_public_key.pem"


def _fix(path: Path) -> str:
    return (
        f"set UnixSocketName in the configurationUpdate of {COMPONENT_NAME} for this device "
        f"to a path of its own, e.g. {path.parent}/<thing name>/agent.sock (the agent "
        "creates a missing folder private to its user); client code that reads "
        "UnixSocketName with GetConfiguration follows"
    )


def check_socket_path(path: Path) -> None:
    """AgentError naming ``path`` unless the agent may listen there now."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
    st = os.lstat(folder)
    mode = stat.S_IMODE(st.st_mode)
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid not in (os.geteuid(), 0):
        problem = f"is owned by uid {st.st_uid}, neither this user nor root"
    elif mode & 0o022 and not mode & stat.S_ISVTX:
        problem = f"has mode {mode:04o}: other users can write to it and replace the socket"
    if problem is not None:
        raise AgentError(
            f"UnixSocketName {path}: its folder {folder} {problem}; the agent does not listen "
            f"there. {_fix(path)}"
        )
    if mode & 0o022:
        log.warning(
            "UnixSocketName %s is in %s, a folder every local user can create files in: "
            "another user could take the name before the agent starts. The Edge Manager "
            "default is there; set UnixSocketName to a path in a private folder to rule it out",
            path,
            folder,
        )
    try:
        state = clear_stale_socket(path, probe_timeout=2.0)
    except OSError as exc:
        raise AgentError(
            f"UnixSocketName {path}: a socket left there cannot be removed ({exc}); another "
            f"user's process made it. Remove it as that user or root, or {_fix(path)}"
        ) from exc
    if state == "not a socket":
        raise AgentError(
            f"UnixSocketName {path} exists and is not a socket; remove it, or {_fix(path)}"
        )
    if state == "live":
        raise AgentError(
            f"UnixSocketName {path} is in use: another process serves on it (another local "
            f"device's {COMPONENT_NAME} with the same UnixSocketName, e.g. the default, or a "
            f"real Edge Manager agent). Two devices on one machine cannot share it: {_fix(path)}"
        )


def _public_key_file(config: EdgeManagerConfig) -> Path | None:
    if not config.public_key_pem:
        return None
    path = config.work / PUBLIC_KEY_FILE
    config.work.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, config.public_key_pem.strip() + "\n", fsync=False)
    os.chmod(path, 0o600)
    try:
        load_public_key(path)
    except Exception as exc:  # cryptography raises several types for a bad PEM
        raise ConfigurationError(
            f"{COMPONENT_NAME} configuration PublicKey is not a PEM public key ({exc}); set it "
            "to the contents of the public key file edgekit packages are signed for "
            "(`edgekit keys`), or leave it empty"
        ) from exc
    return path


def _describe(config: EdgeManagerConfig, key_file: Path | None) -> None:
    if not config.device_fleet:
        log.warning(
            "DeviceFleetName is empty; Edge Manager needs it on AWS. The local device has no "
            "SageMaker device fleet, so nothing else changes here"
        )
    else:
        log.info("device fleet %s (not contacted: there is no SageMaker Edge on the local device)",
                 config.device_fleet)  # fmt: skip
    if config.bucket and "sagemaker" not in config.bucket:
        log.warning(
            "BucketName %s does not contain 'sagemaker': on AWS the device role's "
            "AmazonSageMakerEdgeDeviceFleetPolicy allows only such buckets",
            config.bucket,
        )
    where = (
        f"s3://{config.bucket}/{config.folder_prefix}/<model>/<capture id>/ "
        f"(staged in {config.capture_dir})"
        if config.uploads
        else str(config.capture_dir)
    )
    log.info(
        "CaptureData -> %s; CaptureDataBufferSize %d bounds the captures waiting; "
        "batch and period settings (%s) are accepted and not used: each capture is "
        "uploaded as it arrives",
        where,
        config.buffer_size,
        ", ".join(f"{k}={v}" for k, v in config.numbers.items() if k != "CaptureDataBufferSize"),
    )
    if key_file is None:
        log.info(
            "PublicKey is empty: plain ONNX models load unverified; signed edgekit packages "
            "are refused until PublicKey is set"
        )
    else:
        log.info("signed edgekit packages are verified against PublicKey (%s)", key_file)


def serve(config: EdgeManagerConfig, stop: threading.Event) -> None:
    """Serve until ``stop`` is set."""
    check_socket_path(config.socket)
    key_file = _public_key_file(config)
    _describe(config, key_file)
    # Plain boto3.client("s3") in the upload process: the device gives components
    # AWS_ENDPOINT_URL and credentials, so it lands on the local (emulated) S3, as the real
    # agent's uploads reach S3 through the device role.
    uploader = (
        CaptureUploader(UploadProcess(), config.bucket, config.folder_prefix)
        if config.uploads
        else None
    )
    server = AgentServer(
        config.socket,
        key_file,
        capture_dir=config.capture_dir,
        capture_uploader=uploader,
        unsigned_onnx=True,
    )
    assert server.captures is not None
    server.captures.max_pending = config.buffer_size
    server.start()
    try:
        log.info("%s: Edge Manager agent API on %s", COMPONENT_NAME, server.target)
        trimmer = HeapTrimmer()  # a model load leaves ~10 MB freed in the C heap
        while not stop.wait(1.0):
            trimmer.tick()
    finally:
        server.stop()


def main() -> int:
    try:
        config = read_config()
    except ConfigurationError as exc:
        print(f"{COMPONENT_NAME}: {exc}", file=sys.stderr, flush=True)
        return 1
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        serve(config, stop)
    except EdgekitError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
