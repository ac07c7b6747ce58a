"""The emulator's HTTP layer answers hostile requests with AWS-shaped errors and keeps serving.

Issue 12, items 5, 11 and 12: deep nesting, bad timestamps, oversize and negative
bodies, idle connections, alias bombs, ``.``/``..`` component names, and a store that
does not rewrite every component on each save.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")

from botocore.config import Config  # noqa: E402

from edgekit.local.greengrass.server import GreengrassServer  # noqa: E402

pytestmark = pytest.mark.timeout(30)

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDS = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "t"}
GROUP = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/line-1"
IDLE = {"idle_timeout": 1.0}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GreengrassServer]:
    srv = GreengrassServer(tmp_path / "gg", None, REGION, **IDLE).start()
    yield srv
    srv.stop()


@pytest.fixture
def gg(server: GreengrassServer) -> Any:
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=10)
    return boto3.client("greengrassv2", endpoint_url=server.url, config=config, **CREDS)


def recipe(name: str = "com.example.Hello", version: str = "1.0.0", **extra: Any) -> dict:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "Manifests": [{"Lifecycle": {"Run": "echo hi"}}],
        **extra,
    }


def raw(server: GreengrassServer, data: bytes, *, timeout: float = 5) -> tuple[int, dict, bytes]:
    """Send raw bytes, read one response: (status, headers, body); never waits for ever."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {buf!r}"
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, headers, body


def assert_validation(status: int, headers: dict, body: bytes) -> dict:
    assert status == 400, (status, body)
    assert headers["x-amzn-errortype"] == "ValidationException"
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["message"]
    return payload


def assert_still_serving(server: GreengrassServer) -> None:
    status, _, body = raw(server, b"GET /_edgekit/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and json.loads(body)["status"] == "ok"


# --- item 12: the HTTP layer ---------------------------------------------------------------


def test_negative_content_length_gets_an_answer(server: GreengrassServer) -> None:
    request = b"POST /greengrass/v2/createComponentVersion HTTP/1.1\r\nHost: x\r\n"
    status, headers, body = raw(server, request + b"Content-Length: -1\r\n\r\n{}")
    assert "Content-Length" in assert_validation(status, headers, body)["message"]
    assert_still_serving(server)


@pytest.mark.parametrize("length", ["abc", "1e3", " "])
def test_garbage_content_length_gets_json(server: GreengrassServer, length: str) -> None:
    request = b"POST /greengrass/v2/deployments HTTP/1.1\r\nHost: x\r\n"
    request += f"Content-Length: {length}\r\n\r\n".encode()
    assert_validation(*raw(server, request))
    assert_still_serving(server)


def test_negative_chunk_size_gets_an_answer(server: GreengrassServer) -> None:
    request = b"POST /greengrass/v2/deployments HTTP/1.1\r\nHost: x\r\n"
    request += b"Transfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n"
    assert_validation(*raw(server, request))
    assert_still_serving(server)


def test_oversize_body_gets_a_json_error(server: GreengrassServer) -> None:
    request = b"POST /greengrass/v2/createComponentVersion HTTP/1.1\r\nHost: x\r\n"
    status, headers, body = raw(server, request + b"Content-Length: 67108865\r\n\r\n")
    assert "64 MiB" in assert_validation(status, headers, body)["message"]
    assert headers.get("connection") == "close"
    assert_still_serving(server)


def test_malformed_request_line_gets_json(server: GreengrassServer) -> None:
    status, headers, body = raw(server, b"NONSENSE\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json", body
    assert json.loads(body)["message"]
    assert_still_serving(server)


def test_idle_connections_time_out(server: GreengrassServer) -> None:
    started = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"POST /greengrass/v2/deployments HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
        assert sock.recv(65536) == b""  # the server hangs up on a stalled body
    assert time.monotonic() - started < 5
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        assert sock.recv(65536) == b""  # and on a connection that never sends a request
    assert time.monotonic() - started < 8
    assert_still_serving(server)


def test_deeply_nested_request_body_is_a_validation_error(server: GreengrassServer) -> None:
    body = b'{"targetArn": "x", "components": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    request = b"POST /greengrass/v2/deployments HTTP/1.1\r\nHost: x\r\n"
    request += f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    assert_validation(*raw(server, request))
    assert_still_serving(server)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lastStatusChangeTimestamp", "abc"),
        ("lastStatusChangeTimestamp", True),
        ("lifecycleStatusCodes", 5),
    ],
)
def test_bad_device_status_is_a_validation_error(
    server: GreengrassServer, field: str, value: Any
) -> None:
    component = {"componentName": "c", "componentVersion": "1.0.0", field: value}
    body = json.dumps({"status": "HEALTHY", "components": [component]}).encode()
    for raw_body in (body, body.replace(b"true", b"NaN")):
        request = b"POST /_edgekit/devices/dev-1/status HTTP/1.1\r\nHost: x\r\n"
        request += f"Content-Length: {len(raw_body)}\r\n\r\n".encode() + raw_body
        payload = assert_validation(*raw(server, request))
        assert field in payload["message"]
    assert_still_serving(server)


def test_deeply_nested_device_status_is_a_validation_error(server: GreengrassServer) -> None:
    body = b'{"status": "HEALTHY", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    request = b"POST /_edgekit/devices/dev-1/status HTTP/1.1\r\nHost: x\r\n"
    request += f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    assert_validation(*raw(server, request))


# --- items 5, 11, 12: CreateComponentVersion and CreateDeployment ---------------------------


def test_alias_bomb_is_refused_quickly(gg: Any, server: GreengrassServer) -> None:
    bomb = (
        "RecipeFormatVersion: '2020-01-25'\nComponentName: com.example.Bomb\n"
        "ComponentVersion: '1.0.0'\nComponentConfiguration:\n  DefaultConfiguration:\n"
        '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(
            f"    {c}: &{c} [{','.join(['*' + p] * 9)}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "Manifests:\n  - Lifecycle:\n      Run: echo hi\n"
    )
    started = time.monotonic()
    with pytest.raises(gg.exceptions.ValidationException, match="inlineRecipe.*alias"):
        gg.create_component_version(inlineRecipe=bomb.encode())
    assert time.monotonic() - started < 3
    assert gg.list_components()["components"] == []
    total = sum(p.stat().st_size for p in server.backend.state_dir.rglob("*") if p.is_file())
    assert total < 100_000


@pytest.mark.parametrize(
    "text",
    [
        "RecipeFormatVersion: '2020-01-25'\nComponentName: com.example.Deep\n"
        "ComponentVersion: '1.0.0'\nManifests: " + "[" * 1500 + "]" * 1500 + "\n",
        json.dumps(recipe("com.example.Deep"))[:-1]
        + ', "Lifecycle": '
        + '{"a": ' * 1500
        + "1"
        + "}" * 1500
        + "}",
    ],
    ids=["yaml", "json"],
)
def test_deep_recipe_is_a_validation_error(gg: Any, text: str) -> None:
    with pytest.raises(gg.exceptions.ValidationException, match="nested more than"):
        gg.create_component_version(inlineRecipe=text.encode())


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_component_names_are_refused(gg: Any, name: str) -> None:
    with pytest.raises(gg.exceptions.ValidationException, match="ComponentName"):
        gg.create_component_version(inlineRecipe=json.dumps(recipe(name)).encode())
    assert gg.list_components()["components"] == []


@pytest.mark.parametrize("depth", [1500, 200])
def test_deep_configuration_merge_is_a_validation_error(gg: Any, depth: int) -> None:
    gg.create_component_version(inlineRecipe=json.dumps(recipe()).encode())
    merge = '{"a": ' * depth + "1" + "}" * depth
    with pytest.raises(gg.exceptions.ValidationException, match="merge.*nested more than"):
        gg.create_deployment(
            targetArn=GROUP,
            components={
                "com.example.Hello": {
                    "componentVersion": "1.0.0",
                    "configurationUpdate": {"merge": merge},
                }
            },
        )
    assert gg.list_deployments()["deployments"] == []


def test_shallow_configuration_merge_is_fine(gg: Any) -> None:
    gg.create_component_version(inlineRecipe=json.dumps(recipe()).encode())
    merge = '{"a": ' * 20 + "1" + "}" * 20
    spec = {"componentVersion": "1.0.0", "configurationUpdate": {"merge": merge}}
    gg.create_deployment(targetArn=GROUP, components={"com.example.Hello": spec})


# --- item 5: persistence writes what changed ------------------------------------------------


def test_saving_a_component_does_not_rewrite_the_others(tmp_path: Path) -> None:
    state = tmp_path / "gg"
    with GreengrassServer(state, None, REGION) as first:
        gg = boto3.client("greengrassv2", endpoint_url=first.url, **CREDS)
        for i in range(5):
            gg.create_component_version(
                inlineRecipe=json.dumps(recipe(f"com.example.C{i}")).encode()
            )
        before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in state.rglob("*.json")}
        time.sleep(0.01)
        arn = gg.create_component_version(
            inlineRecipe=json.dumps(recipe("com.example.C0", "1.0.1")).encode()
        )["arn"]
        gg.delete_component(arn=arn.replace("C0:versions:1.0.1", "C1:versions:1.0.0"))
        after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in state.rglob("*.json")}
    component_files = [p for p in before if p.parent.name == "components"]
    assert len(component_files) == 5
    unchanged = [p for p in component_files if after.get(p) == before[p]]
    assert len(unchanged) == 4  # C1 was deleted; C0, C2, C3, C4 untouched
    assert len([p for p in after if p.parent.name == "components"]) == 5

    with GreengrassServer(state, None, REGION) as second:
        gg = boto3.client("greengrassv2", endpoint_url=second.url, **CREDS)
        names = sorted(c["componentName"] for c in gg.list_components()["components"])
        assert names == ["com.example.C0", "com.example.C2", "com.example.C3", "com.example.C4"]
        assert gg.get_component(arn=arn)["recipe"]


def test_a_legacy_components_file_is_migrated(tmp_path: Path) -> None:
    state = tmp_path / "gg"
    with GreengrassServer(state, None, REGION) as first:
        gg = boto3.client("greengrassv2", endpoint_url=first.url, **CREDS)
        arn = gg.create_component_version(inlineRecipe=json.dumps(recipe()).encode())["arn"]
        records = json.loads(json.dumps(first.backend.components))
    for p in (state / "components").iterdir():
        p.unlink()
    (state / "components").rmdir()
    (state / "components.json").write_text(json.dumps({"format": 1, "data": records}))
    with GreengrassServer(state, None, REGION) as second:
        gg = boto3.client("greengrassv2", endpoint_url=second.url, **CREDS)
        assert gg.describe_component(arn=arn)["componentName"] == "com.example.Hello"
    assert not (state / "components.json").exists()
    assert len(list((state / "components").iterdir())) == 1


@pytest.mark.parametrize(
    "extra",
    ["Deep: " + "9" * 5000, "Deep: !!timestamp 2020-99-99", "Deep: !!set {x}"],
    ids=["huge-int", "bad-date", "set"],
)
def test_unreadable_recipe_values_are_a_validation_error(gg: Any, extra: str) -> None:
    text = (
        "RecipeFormatVersion: '2020-01-25'\nComponentName: com.example.Odd\n"
        f"ComponentVersion: '1.0.0'\n{extra}\nManifests:\n  - Lifecycle:\n      Run: echo hi\n"
    )
    with pytest.raises(gg.exceptions.ValidationException, match="inlineRecipe"):
        gg.create_component_version(inlineRecipe=text.encode())
