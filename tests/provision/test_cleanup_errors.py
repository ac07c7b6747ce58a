"""botocore errors reach provisioning's callers as edgekit errors, and every page is read.

botocore's Stubber checks each request against the service model and answers with a
queued response or a ClientError; ``clients.client`` is patched to hand the stubbed
clients to the public functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from edgekit import clients
from edgekit.errors import AccessDeniedError, AwsServiceError, StackError
from edgekit.provision import (
    cancel_deployments,
    delete_components,
    find_provisioned,
    thing_group_of,
)
from edgekit.settings import Settings

SETTINGS = Settings(backend="aws", region="us-east-1")
ARN = "arn:aws:greengrass:us-east-1:123456789012"
GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/edgekit-devices"


def _client(service: str) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Stubber]]:
    """One stubbed client per service; ``clients.client`` hands them out."""
    made = {s: _client(s) for s in ("cloudformation", "greengrassv2", "iot", "s3", "sts")}
    stubbers = {s: Stubber(c) for s, c in made.items()}
    monkeypatch.setattr(clients, "client", lambda service, settings=None, **kw: made[service])
    for stub in stubbers.values():
        stub.activate()
    yield stubbers
    for stub in stubbers.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


@pytest.mark.parametrize(
    ("code", "expected", "words"),
    [
        ("AccessDenied", AccessDeniedError, "IAM permissions"),
        ("ValidationError", StackError, "name is not valid"),
    ],
)
def test_a_refused_describe_names_the_stack(
    stubs: dict[str, Stubber], code: str, expected: type[Exception], words: str
) -> None:
    stubs["cloudformation"].add_client_error(
        "describe_stacks", service_error_code=code, service_message="name is not valid"
    )
    with pytest.raises(expected, match=f"stack edgekit-device: cannot describe it.*{words}"):
        find_provisioned(SETTINGS)


def test_a_missing_stack_is_none_not_an_error(stubs: dict[str, Stubber]) -> None:
    stubs["cloudformation"].add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id edgekit-device does not exist",
    )
    assert find_provisioned(SETTINGS) is None


def test_a_stack_error_is_still_a_stack_error_class() -> None:
    from edgekit import stack

    assert stack.StackError is StackError  # edgekit.stack.StackError keeps working


def test_cancel_deployments_reads_every_page(stubs: dict[str, Stubber]) -> None:
    """Pagination regression: an ACTIVE deployment on the second page is canceled too."""
    gg = stubs["greengrassv2"]
    row = {"targetArn": GROUP_ARN, "deploymentStatus": "ACTIVE"}
    gg.add_response(
        "list_deployments",
        {"deployments": [{**row, "deploymentId": "first"}], "nextToken": "page-2"},
        {"historyFilter": "ALL"},
    )
    gg.add_response(
        "list_deployments",
        {"deployments": [{**row, "deploymentId": "second"}]},
        {"historyFilter": "ALL", "nextToken": "page-2"},
    )
    gg.add_response("cancel_deployment", {}, {"deploymentId": "first"})
    gg.add_client_error(  # finished meanwhile: skipped, not an error
        "cancel_deployment", service_error_code="ConflictException", http_status_code=409
    )
    assert cancel_deployments(SETTINGS, "edgekit-devices") == ["first"]


def test_cancel_deployments_maps_a_denied_cancel(stubs: dict[str, Stubber]) -> None:
    gg = stubs["greengrassv2"]
    gg.add_response(
        "list_deployments",
        {
            "deployments": [
                {"targetArn": GROUP_ARN, "deploymentStatus": "ACTIVE", "deploymentId": "d-1"}
            ]
        },
    )
    gg.add_client_error(
        "cancel_deployment", service_error_code="AccessDeniedException", http_status_code=403
    )
    with pytest.raises(AccessDeniedError, match="deployment d-1: cannot cancel it"):
        cancel_deployments(SETTINGS, "edgekit-devices")


def test_delete_components_skips_what_is_gone_and_maps_the_rest(
    stubs: dict[str, Stubber],
) -> None:
    gg = stubs["greengrassv2"]
    name = SETTINGS.model_component
    arn = f"{ARN}:components:{name}"
    gg.add_response("list_components", {"components": [{"componentName": name, "arn": arn}]})
    gg.add_response(
        "list_component_versions",
        {
            "componentVersions": [
                {"componentName": name, "componentVersion": v, "arn": f"{arn}:versions:{v}"}
                for v in ("1.0.0", "1.0.1", "1.0.2")
            ]
        },
    )
    gg.add_response("delete_component", {})
    gg.add_client_error(
        "delete_component", service_error_code="ResourceNotFoundException", http_status_code=404
    )
    gg.add_client_error(
        "delete_component", service_error_code="InternalServerException", http_status_code=500
    )
    with pytest.raises(AwsServiceError, match=f"component {name} 1.0.2: cannot delete it") as info:
        delete_components(SETTINGS, [name])
    assert info.value.code == "InternalServerException"
    assert info.value.resource == f"component {name} 1.0.2"


def test_thing_group_of_falls_back_without_a_stack(stubs: dict[str, Stubber]) -> None:
    stubs["cloudformation"].add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id edgekit-device does not exist",
    )
    assert thing_group_of(SETTINGS, thing_group="mine") == "mine"
