"""Start, find and stop the local endpoints: moto, the Greengrass emulator, the MQTT broker,
and the scheduler of local pipeline schedules (``python -m edgekit.schedule``).

`up()` is idempotent and safe to call from every notebook cell: live servers
that answer are kept (same pids, same ports); dead or hung ones are restarted,
on their previous port when it is still free. The servers run detached, so
they survive a notebook kernel restart; `down()` stops them and every device
runtime recorded in the same home.

moto keeps its state in ``home/moto/state.pickle`` (saved a few seconds after each
change and when `down()` stops it, restored when `up()` starts it; see
``moto_state``); `fresh_moto_state()` moves that file aside so moto starts empty.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgekit.errors import ConfigurationError, LocalBackendError
from edgekit.files import write_text_atomic
from edgekit.local import moto_state, process
from edgekit.local.home import HomeLayout, home_lock, local_home
from edgekit.local.mqtt.broker import mqtt_ping
from edgekit.settings import Settings

HOST = "127.0.0.1"
ACCOUNT_ID = "123456789012"  # moto's default account
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"
GREENGRASS_MODULE = "edgekit.local.greengrass"
# moto writes its last snapshot when it stops; give a large state time before SIGKILL.
MOTO_STOP_TIMEOUT = 60.0

MOTO, GREENGRASS, MQTT = "moto", "greengrass", "mqtt"
SERVERS: tuple[str, ...] = (MOTO, GREENGRASS, MQTT)
# The local scheduler of pipeline schedules (`edgekit pipeline schedule`): started by `up()`
# after the servers, recorded in endpoints.json, stopped by `down()` before them; the
# endpoints do not need it (`LocalEndpoints.load` does not check it).
SCHEDULER = "scheduler"
SCHEDULER_MODULE = "edgekit.schedule"

# boto3 client name -> botocore's service-specific endpoint variable. botocore reads
# AWS_ENDPOINT_URL_<serviceId upper-cased, spaces to underscores>: "CloudWatch Logs" is
# the serviceId of "logs", "IoT Data Plane" of "iot-data" (tests compare with botocore).
ENDPOINT_ENV: dict[str, str] = {
    "s3": "AWS_ENDPOINT_URL_S3",
    "iot": "AWS_ENDPOINT_URL_IOT",
    "iot-data": "AWS_ENDPOINT_URL_IOT_DATA_PLANE",
    "cloudformation": "AWS_ENDPOINT_URL_CLOUDFORMATION",
    "sagemaker": "AWS_ENDPOINT_URL_SAGEMAKER",
    "iam": "AWS_ENDPOINT_URL_IAM",
    "sts": "AWS_ENDPOINT_URL_STS",
    "ssm": "AWS_ENDPOINT_URL_SSM",
    "ec2": "AWS_ENDPOINT_URL_EC2",
    "logs": "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
    "greengrassv2": "AWS_ENDPOINT_URL_GREENGRASSV2",
}
# Services answered by the Greengrass emulator; everything else goes to moto.
GREENGRASS_SERVICES = frozenset({"greengrassv2"})


@dataclass(frozen=True)
class LocalEndpoints:
    """Where the local servers listen, as recorded in ``home/endpoints.json``."""

    region: str
    account_id: str
    moto_url: str
    greengrass_url: str
    mqtt: str
    home: Path = field(compare=False)

    @classmethod
    def load(
        cls, home: str | os.PathLike[str] | None = None, *, optional: tuple[str, ...] = ()
    ) -> LocalEndpoints:
        """The running endpoints; LocalBackendError if `local up` has not run or a server died.

        Servers named in ``optional`` may be down (a device runtime starts without the MQTT
        broker and spools IoT Core messages until it is back)."""
        layout = HomeLayout.of(home)
        data = _read_endpoints_file(layout)
        if data is None:
            raise LocalBackendError(
                f"local endpoints are not running (no {layout.endpoints_file}); "
                "run `edgekit local up`" + ("" if home is None else f" --home {layout.root}")
            )
        dead = [
            name
            for name in SERVERS
            if name not in optional and not process.is_running(layout.root, name)
        ]
        if dead:
            raise LocalBackendError(
                f"local endpoints are not running ({', '.join(dead)} stopped; see "
                f"{layout.logs_dir}); run `edgekit local up`"
            )
        return cls._from_dict(data, layout)

    @classmethod
    def _from_dict(cls, data: dict[str, Any], layout: HomeLayout) -> LocalEndpoints:
        try:
            return cls(
                region=str(data["region"]),
                account_id=str(data.get("account_id", ACCOUNT_ID)),
                moto_url=str(data[MOTO]),
                greengrass_url=str(data[GREENGRASS]),
                mqtt=str(data[MQTT]),
                home=layout.root,
            )
        except KeyError as exc:
            raise LocalBackendError(
                f"{layout.endpoints_file} lacks the field {exc.args[0]!r}; run "
                "`edgekit local down` then `edgekit local up`"
            ) from exc

    def to_dict(self) -> dict[str, str]:
        """The ``endpoints.json`` document."""
        return {
            "region": self.region,
            "account_id": self.account_id,
            MOTO: self.moto_url,
            GREENGRASS: self.greengrass_url,
            MQTT: self.mqtt,
        }

    @property
    def mqtt_host(self) -> str:
        return self.mqtt.rsplit(":", 1)[0]

    @property
    def mqtt_port(self) -> int:
        return int(self.mqtt.rsplit(":", 1)[1])

    def url_for(self, service: str) -> str:
        """The endpoint a boto3 client for ``service`` must use."""
        return self.greengrass_url if service in GREENGRASS_SERVICES else self.moto_url

    def env(self) -> dict[str, str]:
        """Variables that point plain boto3 / the AWS CLI / subprocesses at these endpoints.

        ``AWS_ENDPOINT_URL`` (moto) catches every other service, so nothing set up
        for local use can reach real AWS with the dummy credentials.
        """
        variables = {"AWS_ENDPOINT_URL": self.moto_url}
        for service, name in ENDPOINT_ENV.items():
            variables[name] = self.url_for(service)
        variables.update(
            {
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
                "EDGEKIT_MQTT_ENDPOINT": self.mqtt,
                "EDGEKIT_LOCAL_HOME": str(self.home),
            }
        )
        return variables


@dataclass(frozen=True)
class ProcessStatus:
    """One row of `edgekit local status`."""

    name: str
    pid: int | None
    endpoint: str
    alive: bool
    answering: bool

    @property
    def ok(self) -> bool:
        return self.alive and self.answering


# --- probes: does a server answer its protocol? ------------------------------------------


def http_answers(url: str, path: str = "/", timeout: float = 2.0) -> bool:
    """True if ``url`` answers an HTTP GET with any status (a server that speaks HTTP)."""
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        return False
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return 100 <= response.status < 600
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _moto_answers(url: str) -> bool:
    # moto's dashboard page: static, cheap, and only moto serves it.
    return http_answers(url, "/moto-api/")


def _greengrass_answers(url: str) -> bool:
    return http_answers(url, "/greengrass/v2/components?maxResults=1")


def _scheduler_answers(url: str) -> bool:
    return http_answers(url, "/")


def _mqtt_answers(endpoint: str) -> bool:
    host, _, port = endpoint.rpartition(":")
    return bool(port.isdigit()) and mqtt_ping(host, int(port))


# --- the three servers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    layout: HomeLayout
    region: str
    moto_url: str | None = None


@dataclass(frozen=True)
class _Server:
    """How to start one server, where it listens, and how to ask it if it answers."""

    name: str
    module: Callable[[], str]  # looked up at start time (tests may point it elsewhere)
    answers: Callable[[str], bool]
    extra_args: Callable[[_Context], list[str]]
    scheme: str = "http://"

    def endpoint(self, port: int) -> str:
        return f"{self.scheme}{HOST}:{port}"

    def argv(self, ctx: _Context, port: int) -> list[str]:
        port_file = str(ctx.layout.port_file(self.name))
        return process.python_argv(
            self.module(),
            "--host",
            HOST,
            "--port",
            str(port),
            "--port-file",
            port_file,
            *self.extra_args(ctx),
        )


def _greengrass_args(ctx: _Context) -> list[str]:
    if ctx.moto_url is None:  # pragma: no cover - moto always starts first
        raise LocalBackendError("internal error: the Greengrass emulator needs moto's URL")
    ctx.layout.greengrass_dir.mkdir(parents=True, exist_ok=True)
    return [
        "--state-dir",
        str(ctx.layout.greengrass_dir),
        "--aws-endpoint",
        ctx.moto_url,
        "--region",
        ctx.region,
    ]


def _moto_args(ctx: _Context) -> list[str]:
    return [
        "--state-file",
        str(ctx.layout.moto_state_file),
        "--greengrass-port-file",  # state machines' greengrassv2 calls (moto_stepfunctions)
        str(ctx.layout.port_file(GREENGRASS)),
        "--mqtt-port-file",  # the Device Shadow service on the broker's topics (moto_shadows)
        str(ctx.layout.port_file(MQTT)),
    ]


_SERVERS: dict[str, _Server] = {
    MOTO: _Server(MOTO, lambda: "edgekit.local.moto_server", _moto_answers, _moto_args),
    MQTT: _Server(
        MQTT,
        lambda: "edgekit.local.mqtt",
        _mqtt_answers,
        lambda ctx: ["--state-dir", str(ctx.layout.root / "mqtt")],  # persistent sessions
        scheme="",
    ),
    GREENGRASS: _Server(
        GREENGRASS, lambda: GREENGRASS_MODULE, _greengrass_answers, _greengrass_args
    ),
    SCHEDULER: _Server(
        SCHEDULER,
        lambda: SCHEDULER_MODULE,
        _scheduler_answers,
        lambda ctx: ["--home", str(ctx.layout.root)],
    ),
}
# Start order: the emulator needs moto's URL.
_START_ORDER = (MOTO, MQTT, GREENGRASS)
# Stop order: devices first (they talk to all three), then the emulator, then the rest.
_STOP_ORDER = (GREENGRASS, MQTT, MOTO)


def _greengrass_problem() -> str | None:
    """Why ``python -m edgekit.local.greengrass`` cannot run here, or None if it can."""
    try:
        if importlib.util.find_spec(f"{GREENGRASS_MODULE}.__main__") is not None:
            return None
    except ModuleNotFoundError:
        pass
    except ImportError as exc:
        return f"importing it fails: {exc}"
    return "the module (with its __main__) is not importable in this Python environment"


def greengrass_available() -> bool:
    """True if the Greengrass v2 emulator can be started with ``python -m``."""
    return _greengrass_problem() is None


def _read_endpoints_file(layout: HomeLayout) -> dict[str, Any] | None:
    try:
        data = json.loads(layout.endpoints_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LocalBackendError(
            f"{layout.endpoints_file} is not readable JSON ({exc}); run `edgekit local down` "
            "then `edgekit local up`"
        ) from exc
    if not isinstance(data, dict):
        raise LocalBackendError(
            f"{layout.endpoints_file} is not a JSON object; run `edgekit local down` then "
            "`edgekit local up`"
        )
    return data


def _port_of(endpoint: str | None) -> int | None:
    if not endpoint:
        return None
    _, _, port = endpoint.rpartition(":")
    return int(port) if port.isdigit() else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _read_port(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _argv_value(argv: list[str], flag: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return argv[argv.index(flag) + 1]
    return None


def _start(server: _Server, ctx: _Context, previous_port: int | None, timeout: float) -> str:
    """Start ``server`` (on its previous port if that is free) and return its endpoint.

    Reusing the port keeps URLs that device runtimes already hold valid. If another
    program takes that port between our check and the server's bind, start again on
    a port the OS picks.
    """
    port_file = ctx.layout.port_file(server.name)

    def ready() -> bool:
        bound = _read_port(port_file)
        return bound is not None and server.answers(server.endpoint(bound))

    ports = [previous_port, 0] if previous_port and _port_free(previous_port) else [0]
    for attempt, port in enumerate(ports):
        port_file.unlink(missing_ok=True)
        try:
            process.start_process(
                ctx.layout.root, server.name, server.argv(ctx, port), ready=ready, timeout=timeout
            )
        except LocalBackendError:
            if attempt + 1 < len(ports):
                continue
            raise
        break
    bound = _read_port(port_file)
    if bound is None:  # pragma: no cover - ready() returned True only after reading it
        raise LocalBackendError(f"{server.name} did not write {port_file}")
    return server.endpoint(bound)


def _keep(server: _Server, layout: HomeLayout, endpoint: str | None, want: dict[str, str]) -> bool:
    """True if the recorded process is alive, answers at ``endpoint`` and runs with ``want``."""
    record = process.read_record(layout.root, server.name)
    if record is None or endpoint is None or not process.is_alive(record):
        return False
    if any(_argv_value(record.argv, flag) != value for flag, value in want.items()):
        return False
    return server.answers(endpoint)


def up(
    home: str | os.PathLike[str] | None = None,
    *,
    region: str | None = None,
    timeout: float = 60.0,
) -> LocalEndpoints:
    """Make moto, the Greengrass emulator, the MQTT broker and the scheduler run and answer;
    idempotent.

    ``region``: the argument, else ``EDGEKIT_REGION``, else the region already
    running in this home, else the Settings default (us-east-1). A different
    region restarts only the Greengrass emulator. Concurrent calls on one home
    are serialized by a file lock.
    """
    if region is not None and not region:
        raise ConfigurationError("region is empty; pass --region or set EDGEKIT_REGION")
    problem = _greengrass_problem()
    if problem is not None:
        raise LocalBackendError(
            f"cannot start the Greengrass v2 control-plane emulator ({GREENGRASS_MODULE}): "
            f"{problem}; reinstall edgekit (pip install edgekit-inspection, or "
            "pip install -e . in a checkout) so "
            f"`python -m {GREENGRASS_MODULE}` runs, then retry `edgekit local up`"
        )
    layout = HomeLayout.of(home)
    with home_lock(layout.root):
        previous = _read_endpoints_file(layout) or {}
        if region is None:
            region = (
                os.environ.get("EDGEKIT_REGION")
                or str(previous.get("region") or "")
                or Settings().region
            )
        endpoints: dict[str, str] = {}
        ctx = _Context(layout, region)
        for name in _START_ORDER:
            server = _SERVERS[name]
            recorded = previous.get(name)
            if recorded is None:  # e.g. an earlier `up` failed before writing endpoints.json
                port = _read_port(layout.port_file(name))
                recorded = server.endpoint(port) if port else None
            want: dict[str, str] = {}
            if name == GREENGRASS:
                ctx = _Context(layout, region, endpoints[MOTO])
                want = {"--aws-endpoint": endpoints[MOTO], "--region": region}
            if _keep(server, layout, recorded, want):
                endpoints[name] = str(recorded)
                continue
            process.stop_process(layout.root, name)  # a hung or stale one
            if name == MOTO:  # refuse a snapshot moto cannot restore, before starting it
                moto_state.check_snapshot(layout.moto_state_file)
            endpoints[name] = _start(server, ctx, _port_of(recorded), timeout)
        endpoints[SCHEDULER] = _start_scheduler(layout, previous, endpoints, region, timeout)
        result = LocalEndpoints(
            region=region,
            account_id=ACCOUNT_ID,
            moto_url=endpoints[MOTO],
            greengrass_url=endpoints[GREENGRASS],
            mqtt=endpoints[MQTT],
            home=layout.root,
        )
        text = json.dumps({**result.to_dict(), SCHEDULER: endpoints[SCHEDULER]}, indent=2) + "\n"
        write_text_atomic(layout.endpoints_file, text, fsync=False)
        return result


def _start_scheduler(
    layout: HomeLayout,
    previous: dict[str, Any],
    endpoints: dict[str, str],
    region: str,
    timeout: float,
) -> str:
    """Keep the scheduler if it answers, else start it; its runs use these endpoints."""
    server = _SERVERS[SCHEDULER]
    recorded = previous.get(SCHEDULER)
    if recorded is None:
        port = _read_port(layout.port_file(SCHEDULER))
        recorded = server.endpoint(port) if port else None
    if _keep(server, layout, recorded, {"--home": str(layout.root)}):
        return str(recorded)
    process.stop_process(layout.root, SCHEDULER)
    return _start(server, _Context(layout, region, endpoints[MOTO]), _port_of(recorded), timeout)


def down(home: str | os.PathLike[str] | None = None, *, timeout: float = 10.0) -> list[str]:
    """Stop every process recorded in ``home/run`` (devices first); idempotent.

    Returns the names of the processes that were running and are now stopped.
    LocalBackendError (once everything is stopped) if moto could not save its state.
    """
    layout = HomeLayout.of(home)
    if not layout.root.is_dir():
        return []
    with home_lock(layout.root):
        names = process.recorded_names(layout.root)
        ordered = [n for n in names if n not in SERVERS] + [n for n in _STOP_ORDER if n in names]
        stopped = [
            name
            for name in ordered
            if process.stop_process(
                layout.root, name, max(timeout, MOTO_STOP_TIMEOUT) if name == MOTO else timeout
            )
        ]
        layout.endpoints_file.unlink(missing_ok=True)
        for name in (*SERVERS, SCHEDULER):
            layout.port_file(name).unlink(missing_ok=True)
        problem = moto_state.take_save_error(layout.moto_state_file)
        if problem is not None:  # everything is stopped; say what the next `up` will find
            raise problem
        return stopped


def fresh_moto_state(home: str | os.PathLike[str] | None = None) -> Path | None:
    """Stop moto (it saves its state) and rename ``home/moto/state.pickle`` to ``*.<time>.bak``.

    The next `up()` starts moto empty. Returns where the old state went (None if there
    was none); it is never deleted. The Greengrass emulator's own state is kept.
    """
    layout = HomeLayout.of(home)
    with home_lock(layout.root):
        process.stop_process(layout.root, MOTO, MOTO_STOP_TIMEOUT)
        return moto_state.move_aside(layout.moto_state_file)


def status(home: str | os.PathLike[str] | None = None) -> list[ProcessStatus]:
    """One row per server and per recorded device runtime: pid, endpoint, alive, answering."""
    layout = HomeLayout.of(home)
    data = _read_endpoints_file(layout) or {}
    rows: list[ProcessStatus] = []
    for name in SERVERS:
        pid = process.pid_of(layout.root, name)
        endpoint = str(data.get(name) or "-")
        answering = pid is not None and endpoint != "-" and _SERVERS[name].answers(endpoint)
        rows.append(ProcessStatus(name, pid, endpoint, pid is not None, answering))
    for name in process.recorded_names(layout.root):
        if name in SERVERS:
            continue
        pid = process.pid_of(layout.root, name)
        if name == SCHEDULER:
            endpoint = str(data.get(name) or "-")
            answering = pid is not None and endpoint != "-" and _scheduler_answers(endpoint)
            rows.append(ProcessStatus(name, pid, endpoint, pid is not None, answering))
            continue
        rows.append(ProcessStatus(name, pid, "-", pid is not None, pid is not None))
    return rows


__all__ = [
    "ACCOUNT_ID",
    "ENDPOINT_ENV",
    "LocalEndpoints",
    "ProcessStatus",
    "SCHEDULER",
    "down",
    "fresh_moto_state",
    "greengrass_available",
    "local_home",
    "status",
    "up",
]
