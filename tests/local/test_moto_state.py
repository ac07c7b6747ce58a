"""moto's state survives `edgekit local down && edgekit local up`, a kill -9 (up to the last
snapshot) and refuses, without touching it, a snapshot it cannot restore (issue 12, "Also")."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from edgekit.errors import LocalBackendError
from edgekit.local import endpoints as ep
from edgekit.local import moto_state, process
from edgekit.local.home import HomeLayout

needs_greengrass = pytest.mark.skipif(
    not ep.greengrass_available(), reason="edgekit.local.greengrass is not importable"
)


# --- the snapshot file, no server ---------------------------------------------------------


def _header_line(**fields: Any) -> bytes:
    header = {
        "format": 1,
        "moto": moto_state.moto_version(),
        "python": moto_state.python_version(),
        "size": 3,
        "sha256": hashlib.sha256(b"abc").hexdigest(),
        "saved_at": 1.0,
        "services": ["s3"],
    }
    header.update(fields)
    return moto_state.MAGIC + json.dumps(header).encode() + b"\n"


def test_a_snapshot_round_trips_and_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "moto" / "state.pickle"
    assert moto_state.check_snapshot(path) is None
    assert moto_state.read_snapshot(path) is None
    written = moto_state.write_snapshot(path, b"payload", ["s3", "iot"], 12.5)
    assert moto_state.check_snapshot(path) == written
    header, payload = moto_state.read_snapshot(path) or (None, b"")
    assert payload == b"payload"
    assert header == written and header.services == ("s3", "iot") and header.saved_at == 12.5
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.pickle"]  # no temp file
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (_header_line(moto="0.0.1") + b"abc", "written by moto 0.0.1"),
        (_header_line(python="2.7") + b"abc", "on Python 2.7"),
        (_header_line(format=99) + b"abc", "snapshot format 99"),
        (_header_line() + b"ab", "truncated or damaged"),
        (b"\x80\x04garbage", "not an edgekit moto snapshot"),
        (moto_state.MAGIC + b"{not json\n", "header is damaged"),
        (_header_line(size="x") + b"abc", "header is damaged"),
    ],
)
def test_a_snapshot_this_moto_cannot_restore_is_refused_with_the_way_out(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "state.pickle"
    path.write_bytes(content)
    for check in (moto_state.check_snapshot, moto_state.read_snapshot):
        with pytest.raises(LocalBackendError) as info:
            check(path)
        message = str(info.value)
        assert problem in message
        assert str(path) in message and "edgekit local up --fresh" in message
    assert path.read_bytes() == content  # never discarded


def test_a_damaged_payload_of_the_right_size_is_refused_on_read(tmp_path: Path) -> None:
    path = tmp_path / "state.pickle"
    path.write_bytes(_header_line() + b"abd")
    assert moto_state.check_snapshot(path) is not None  # the cheap check sees the size only
    with pytest.raises(LocalBackendError, match="sha256 does not match"):
        moto_state.read_snapshot(path)


@pytest.mark.parametrize("which", ["file", "folder"])
def test_a_snapshot_others_can_write_is_not_loaded(tmp_path: Path, which: str) -> None:
    """Loading a pickle runs code: a file another user could have written is refused."""
    path = tmp_path / "moto" / "state.pickle"
    moto_state.write_snapshot(path, b"abc", ["s3"], 1.0)
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert moto_state.read_snapshot(path) is not None
    (path if which == "file" else path.parent).chmod(0o777 if which == "folder" else 0o666)
    with pytest.raises(LocalBackendError) as info:
        moto_state.read_snapshot(path)
    assert "writable by other users" in str(info.value) and "chmod go-w" in str(info.value)


def test_move_aside_keeps_the_state(tmp_path: Path) -> None:
    path = tmp_path / "state.pickle"
    assert moto_state.move_aside(path) is None
    path.write_bytes(b"one")
    first = moto_state.move_aside(path)
    path.write_bytes(b"two")
    second = moto_state.move_aside(path)
    assert first is not None and second is not None and first != second
    assert (first.read_bytes(), second.read_bytes()) == (b"one", b"two")
    assert first.name.startswith("state.pickle.") and first.name.endswith(".bak")
    assert not path.exists()


# --- moto's backends, in this process ------------------------------------------------------


def test_backends_with_locks_and_shared_objects_round_trip_in_process() -> None:
    """SQS keeps a Condition per queue, S3 keeps bodies in temp files: both come back."""
    from moto import mock_aws
    from moto.core.base_backend import BackendDict

    from edgekit.local import moto_backends

    kwargs = {"region_name": "us-east-1"}
    with mock_aws():
        sqs = boto3.client("sqs", **kwargs)
        url = sqs.create_queue(QueueName="results")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="r1")
        s3 = boto3.client("s3", **kwargs)
        s3.create_bucket(Bucket=BUCKET)
        body = os.urandom(BIG)
        s3.put_object(Bucket=BUCKET, Key="k", Body=body)
        payload, services = moto_backends.dump_backends()
        assert {"s3", "sqs"} <= set(services)

        BackendDict.reset()  # what a new process starts with
        assert s3.list_buckets()["Buckets"] == []
        assert {"s3", "sqs"} <= set(moto_backends.restore_backends(payload, "test"))

        assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == body
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
        assert [m["Body"] for m in got] == ["r1"]
        sqs.send_message(QueueUrl=url, MessageBody="r2")  # the recreated locks work


def test_every_service_of_the_local_endpoints_round_trips_in_process() -> None:
    """The services edgekit points at moto (ENDPOINT_ENV) with the objects that broke plain
    pickle: SSM's ParameterDict (a defaultdict needing __init__ arguments) and its
    defaultdict(lambda...), SQS-like conditions, multipart uploads in progress."""
    from moto import mock_aws
    from moto.core.base_backend import BackendDict

    from edgekit.local import moto_backends, moto_cloudformation

    moto_cloudformation.install()
    r = {"region_name": "us-east-1"}
    role_arn = "arn:aws:iam::123456789012:role/r1"
    with mock_aws():
        ec2 = boto3.client("ec2", **r)
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
        iam = boto3.client("iam", **r)
        iam.create_role(RoleName="r1", AssumeRolePolicyDocument="{}")
        ssm = boto3.client("ssm", **r)
        ssm.put_parameter(Name="/edgekit/a", Value="v1", Type="String")
        ssm.add_tags_to_resource(
            ResourceType="Parameter", ResourceId="/edgekit/a", Tags=[{"Key": "k", "Value": "v"}]
        )
        logs = boto3.client("logs", **r)
        logs.create_log_group(logGroupName="edgekit")
        iot = boto3.client("iot", **r)
        iot.create_thing(thingName="t1")
        iot.create_role_alias(roleAlias="edgekit-alias", roleArn=role_arn)
        data = boto3.client("iot-data", **r)
        shadow = {"state": {"reported": {"model": "1.0.0"}}}
        data.update_thing_shadow(thingName="t1", payload=json.dumps(shadow))
        boto3.client("sts", **r).assume_role(RoleArn=role_arn, RoleSessionName="edgekit")
        s3 = boto3.client("s3", **r)
        s3.create_bucket(Bucket=BUCKET)
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mp")["UploadId"]
        part = os.urandom(5 * 1024 * 1024)
        etag = s3.upload_part(Bucket=BUCKET, Key="mp", UploadId=upload, PartNumber=1, Body=part)[
            "ETag"
        ]
        cfn = boto3.client("cloudformation", **r)
        cfn.create_stack(StackName="st", TemplateBody=json.dumps(STACK_TEMPLATE))
        kms = boto3.client("kms", **r)  # keeps cryptography key objects
        signing = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]
        symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
        sealed = kms.encrypt(KeyId=symmetric, Plaintext=b"secret")["CiphertextBlob"]
        ec2.create_key_pair(KeyName="edgekit")
        payload, services = moto_backends.dump_backends()
        expected = {
            "cloudformation", "ec2", "iam", "iot", "iot-data", "kms", "logs", "s3", "ssm", "sts"
        }  # fmt: skip
        assert expected <= set(services)

        BackendDict.reset()
        assert expected <= set(moto_backends.restore_backends(bytes(payload), "test"))

        assert len(ec2.describe_instances()["Reservations"]) == 1
        assert iam.get_role(RoleName="r1")["Role"]["Arn"] == role_arn
        assert ssm.get_parameter(Name="/edgekit/a")["Parameter"]["Value"] == "v1"
        tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/edgekit/a")
        assert tags["TagList"] == [{"Key": "k", "Value": "v"}]
        ssm.put_parameter(Name="/edgekit/b", Value="v2", Type="String")  # the factories work
        ssm.add_tags_to_resource(
            ResourceType="Parameter", ResourceId="/edgekit/b", Tags=[{"Key": "k", "Value": "v"}]
        )
        assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["edgekit"]
        assert iot.describe_role_alias(roleAlias="edgekit-alias")["roleAliasDescription"]
        got = json.loads(data.get_thing_shadow(thingName="t1")["payload"].read())
        assert got["state"] == shadow["state"]
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="mp",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
        assert s3.get_object(Bucket=BUCKET, Key="mp")["Body"].read() == part
        signature = kms.sign(
            KeyId=signing["KeyId"],
            Message=b"m",
            SigningAlgorithm="RSASSA_PSS_SHA_256",
        )["Signature"]
        assert kms.verify(
            KeyId=signing["KeyId"],
            Message=b"m",
            Signature=signature,
            SigningAlgorithm="RSASSA_PSS_SHA_256",
        )["SignatureValid"]
        assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"secret"
        assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["edgekit"]
        cfn.delete_stack(StackName="st")  # the stack's resources are the live ones
        assert iot.list_thing_groups()["thingGroups"] == []


def test_the_real_device_stack_round_trips_and_deletes_in_process() -> None:
    """edgekit's device template (bucket, KMS-encrypted volume, roles, IoT policies, EC2):
    what `edgekit provision` creates must survive a restart and still delete cleanly."""
    from moto import mock_aws
    from moto.core.base_backend import BackendDict

    from edgekit.local import moto_backends, moto_cloudformation
    from edgekit.stack import delete_stack, deploy_stack, stack_outputs

    moto_cloudformation.install()
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name="us-east-1")
        params = {"ThingName": "core-1", "ThingGroupName": "fleet-1"}
        deployed = deploy_stack("edgekit-device", parameters=params, client=cfn, progress=False)
        assert deployed.status == "CREATE_COMPLETE"
        payload, _services = moto_backends.dump_backends()

        BackendDict.reset()
        moto_backends.restore_backends(bytes(payload), "test")

        assert stack_outputs("edgekit-device", client=cfn) == deployed.outputs
        iot = boto3.client("iot", region_name="us-east-1")
        assert iot.describe_thing_group(thingGroupName="fleet-1")["thingGroupName"] == "fleet-1"
        s3 = boto3.client("s3", region_name="us-east-1")
        delete_stack("edgekit-device", client=cfn, s3=s3, iot=iot, progress=False, poll=0.1)
        assert iot.list_thing_groups()["thingGroups"] == []


def test_a_payload_from_another_moto_is_refused_naming_the_file() -> None:
    from edgekit.local import moto_backends

    with pytest.raises(LocalBackendError) as info:
        moto_backends.restore_backends(b"\x80\x04not a pickle", "/x/state.pickle")
    assert "/x/state.pickle" in str(info.value) and "edgekit local up --fresh" in str(info.value)


def test_the_keeper_saves_changes_only_and_keeps_the_old_file_when_a_save_fails(
    tmp_path: Path,
) -> None:
    from moto import mock_aws
    from moto.s3.models import s3_backends

    from edgekit.local.moto_keeper import StateKeeper

    path = tmp_path / "moto" / "state.pickle"
    keeper = StateKeeper(path)
    app = keeper.wrap(lambda environ, start_response: [b"ok"])
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        assert app({"REQUEST_METHOD": "GET"}, None) == [b"ok"]
        assert not keeper.save_if_dirty()  # reads change nothing
        assert not path.exists()
        app({"REQUEST_METHOD": "PUT"}, None)
        assert keeper.save_if_dirty()
        first = path.read_bytes()
        app({"REQUEST_METHOD": "POST"}, None)  # e.g. a Describe call: same state, no rewrite
        assert not keeper.save_if_dirty()
        assert path.read_bytes() == first

        backend = s3_backends["123456789012"]["aws"]
        backend.unpicklable = lambda: None  # type: ignore[attr-defined]
        app({"REQUEST_METHOD": "POST"}, None)
        with pytest.raises(LocalBackendError, match="previous snapshot is kept"):
            keeper.save_if_dirty()
        assert path.read_bytes() == first
        recorded = moto_state.error_file(path).read_text()
        assert "cannot pickle" in recorded or "Can't pickle" in recorded
        del backend.unpicklable  # type: ignore[attr-defined]
        s3.create_bucket(Bucket="another-bucket")
        assert keeper.stop()  # still dirty: the last save writes it
        assert path.read_bytes() != first
        assert not moto_state.error_file(path).exists()  # a good save clears the record


# --- against the real local endpoints ------------------------------------------------------

BUCKET = "edgekit-state-test"
BIG = 6 * 1024 * 1024 + 7  # larger than moto's in-memory buffer: a temp file on disk


@pytest.fixture
def clean_aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_") or key in ("EDGEKIT_LOCAL_HOME", "EDGEKIT_BACKEND"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def home(tmp_path: Path, clean_aws_env: None) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    ep.down(home)  # whatever happened, no server outlives the test
    assert process.running(home) == {}


def _client(endpoints: ep.LocalEndpoints, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoints.url_for(service),
        region_name=endpoints.region,
        aws_access_key_id=ep.DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=ep.DUMMY_SECRET_ACCESS_KEY,
    )


def _edgekit(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", "local", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "EDGEKIT_QUIET": "1"},
    )


def _component_recipe() -> dict[str, Any]:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Persisted",
        "ComponentVersion": "1.0.0",
        "ComponentPublisher": "edgekit tests",
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {"Run": "ls {artifacts:path}"},
                "Artifacts": [{"URI": f"s3://{BUCKET}/artifacts/model.bin"}],
            }
        ],
    }


STACK_TEMPLATE = {
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "edgekit-stack-b"}},
        "Group": {"Type": "AWS::IoT::ThingGroup", "Properties": {"ThingGroupName": "stack-g"}},
    },
    "Outputs": {"BucketName": {"Value": {"Ref": "Bucket"}}},
}


def _create_everything(endpoints: ep.LocalEndpoints) -> dict[str, Any]:
    body = os.urandom(BIG)
    s3 = _client(endpoints, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="artifacts/model.bin", Body=body)
    iot = _client(endpoints, "iot")
    iot.create_thing(thingName="edge-1")
    iot.create_thing_group(thingGroupName="fleet")
    iot.add_thing_to_thing_group(thingName="edge-1", thingGroupName="fleet")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_policy(
        policyName="edge-policy",
        policyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
            }
        ),
    )
    iot.attach_policy(policyName="edge-policy", target=cert["certificateArn"])
    iot.attach_thing_principal(thingName="edge-1", principal=cert["certificateArn"])
    sm = _client(endpoints, "sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="inspection")
    package = sm.create_model_package(
        ModelPackageGroupName="inspection",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "edgekit/onnx:1", "ModelDataUrl": f"s3://{BUCKET}/m.tgz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    cfn = _client(endpoints, "cloudformation")
    cfn.create_stack(StackName="edgekit-device", TemplateBody=json.dumps(STACK_TEMPLATE))
    gg = _client(endpoints, "greengrassv2")
    arn = gg.create_component_version(inlineRecipe=json.dumps(_component_recipe()).encode())["arn"]
    return {
        "sha256": hashlib.sha256(body).hexdigest(),
        "certificate": cert["certificateId"],
        "package": package["ModelPackageArn"],
        "component": arn,
    }


def _check_everything(endpoints: ep.LocalEndpoints, created: dict[str, Any]) -> None:
    s3 = _client(endpoints, "s3")
    got = s3.get_object(Bucket=BUCKET, Key="artifacts/model.bin")["Body"].read()
    assert len(got) == BIG and hashlib.sha256(got).hexdigest() == created["sha256"]
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {BUCKET, "edgekit-stack-b"}
    iot = _client(endpoints, "iot")
    things = iot.list_things_in_thing_group(thingGroupName="fleet")["things"]
    assert things == ["edge-1"]
    cert = iot.describe_certificate(certificateId=created["certificate"])["certificateDescription"]
    assert cert["status"] == "ACTIVE"
    policies = iot.list_attached_policies(target=cert["certificateArn"])["policies"]
    assert [p["policyName"] for p in policies] == ["edge-policy"]
    assert iot.list_thing_principals(thingName="edge-1")["principals"] == [cert["certificateArn"]]
    sm = _client(endpoints, "sagemaker")
    versions = sm.list_model_packages(ModelPackageGroupName="inspection")
    assert [v["ModelPackageArn"] for v in versions["ModelPackageSummaryList"]] == [
        created["package"]
    ]
    described = sm.describe_model_package(ModelPackageName=created["package"])
    assert described["ModelApprovalStatus"] == "Approved"
    cfn = _client(endpoints, "cloudformation")
    stack = cfn.describe_stacks(StackName="edgekit-device")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["Outputs"] == [{"OutputKey": "BucketName", "OutputValue": "edgekit-stack-b"}]
    # The Greengrass component still resolves and its artifact (stored in S3) downloads.
    gg = _client(endpoints, "greengrassv2")
    assert gg.get_component(arn=created["component"])["recipe"]
    url = gg.get_component_version_artifact(
        arn=created["component"], artifactName=f"{BUCKET}/artifacts/model.bin"
    )["preSignedUrl"]
    with urllib.request.urlopen(url, timeout=60) as response:
        downloaded = response.read()
    assert hashlib.sha256(downloaded).hexdigest() == created["sha256"]


@pytest.mark.integration
@needs_greengrass
def test_local_down_then_up_keeps_every_resource(home: Path) -> None:
    endpoints = ep.up(home)
    created = _create_everything(endpoints)

    down = _edgekit(home, "down")
    assert down.returncode == 0, down.stderr
    assert process.running(home) == {}
    again = _edgekit(home, "up")
    assert again.returncode == 0, again.stderr

    restored = ep.LocalEndpoints.load(home)
    _check_everything(restored, created)
    assert HomeLayout(home).moto_state_file.is_file()
    # The restored objects are the live ones: deleting the stack deletes its bucket.
    cfn = _client(restored, "cloudformation")
    cfn.delete_stack(StackName="edgekit-device")
    buckets = {b["Name"] for b in _client(restored, "s3").list_buckets()["Buckets"]}
    assert buckets == {BUCKET}


def _wait_for_snapshot_after(path: Path, moment: float) -> None:
    deadline = time.monotonic() + 120  # a generous bound, not a timing assertion
    while True:
        try:
            header = moto_state.check_snapshot(path)
        except LocalBackendError:
            header = None  # between rename steps: read again
        if header is not None and header.saved_at > moment:
            return
        assert time.monotonic() < deadline, f"no snapshot of {path} after the changes"
        time.sleep(0.2)


@pytest.mark.integration
@needs_greengrass
def test_kill_9_loses_nothing_up_to_the_last_snapshot(home: Path) -> None:
    endpoints = ep.up(home)
    s3 = _client(endpoints, "s3")
    s3.create_bucket(Bucket=BUCKET)
    body = os.urandom(BIG)
    s3.put_object(Bucket=BUCKET, Key="results/1.bin", Body=body)
    iot = _client(endpoints, "iot")
    iot.create_thing(thingName="edge-9")
    done = time.time()
    # A snapshot taken after `done` holds everything above. One more change makes sure
    # such a snapshot comes (the one holding edge-9 may have been taken just before `done`).
    iot.create_thing(thingName="edge-10")
    _wait_for_snapshot_after(HomeLayout(home).moto_state_file, done)

    record = process.read_record(home, ep.MOTO)
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process.is_alive(record):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    restarted = ep.up(home)  # moto is dead: up starts it again, from the snapshot
    assert process.read_record(home, ep.MOTO).pid != record.pid  # type: ignore[union-attr]
    got = _client(restarted, "s3").get_object(Bucket=BUCKET, Key="results/1.bin")["Body"].read()
    assert got == body
    things = {t["thingName"] for t in _client(restarted, "iot").list_things()["things"]}
    assert "edge-9" in things

    # --fresh on running endpoints: moto saves, its file is moved aside, it restarts empty.
    fresh = _edgekit(home, "up", "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    emptied = ep.LocalEndpoints.load(home)
    assert emptied.moto_url == restarted.moto_url  # same port: the emulator keeps its URL
    assert _client(emptied, "s3").list_buckets()["Buckets"] == []
    kept = list(HomeLayout(home).moto_state_file.parent.glob("state.pickle.*.bak"))
    assert len(kept) == 1 and str(kept[0]) in fresh.stdout
    assert moto_state.check_snapshot(kept[0]) is not None


@pytest.mark.integration
@needs_greengrass
def test_an_incompatible_snapshot_stops_up_and_fresh_moves_it_aside(home: Path) -> None:
    state = HomeLayout(home).moto_state_file
    state.parent.mkdir(parents=True)
    content = _header_line(moto="0.0.1") + b"abc"
    state.write_bytes(content)

    refused = _edgekit(home, "up")
    assert refused.returncode != 0
    assert str(state) in refused.stderr and "edgekit local up --fresh" in refused.stderr
    assert "moto 0.0.1" in refused.stderr
    assert state.read_bytes() == content  # untouched
    assert not process.is_running(home, ep.MOTO)

    fresh = _edgekit(home, "up", "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    kept = list(state.parent.glob("state.pickle.*.bak"))
    assert [p.read_bytes() for p in kept] == [content]
    assert str(kept[0]) in fresh.stdout
    endpoints = ep.LocalEndpoints.load(home)
    assert _client(endpoints, "s3").list_buckets()["Buckets"] == []


@pytest.mark.integration
@needs_greengrass
def test_local_down_says_when_moto_could_not_save(home: Path) -> None:
    endpoints = ep.up(home)
    state = HomeLayout(home).moto_state_file
    # A folder where the snapshot goes: every save fails (rename onto a non-empty folder).
    (state / "blocker").mkdir(parents=True)
    _client(endpoints, "s3").create_bucket(Bucket=BUCKET)
    down = _edgekit(home, "down")
    assert down.returncode != 0
    assert "moto could not save its state" in down.stderr and str(state) in down.stderr
    assert process.running(home) == {}  # everything is stopped all the same
    assert _edgekit(home, "down").returncode == 0  # said once


@pytest.mark.integration
@needs_greengrass
def test_a_damaged_snapshot_stops_moto_with_the_way_out(home: Path) -> None:
    state = HomeLayout(home).moto_state_file
    state.parent.mkdir(parents=True)
    content = _header_line() + b"abd"  # right size, wrong bytes: seen only when moto reads it
    state.write_bytes(content)
    with pytest.raises(LocalBackendError) as info:
        ep.up(home)
    message = str(info.value)
    assert str(state) in message and "edgekit local up --fresh" in message
    assert state.read_bytes() == content


def test_local_up_checks_the_snapshot_without_importing_moto() -> None:
    """Importing moto is slow: `local up` reads the snapshot header without it."""
    code = (
        "import sys, edgekit.local.endpoints, edgekit.local.moto_state; "
        "print('moto' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
