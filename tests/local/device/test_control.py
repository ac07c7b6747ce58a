"""edgekit.local.device.control: the device's calls to the control plane read every page.

A fleet has more thing groups and component versions than one page holds; a device
that read only the first page would miss group deployments and newer versions.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from edgekit.errors import AwsServiceError
from edgekit.local.device.control import ControlPlane, ControlPlaneUnavailable


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class Pages:
    """A fake list call: ``pages`` in order, each naming the next token (None at the end)."""

    def __init__(self, key: str, pages: list[list[Any]], *, error: ClientError | None = None):
        self.key, self.pages, self.error = key, pages, error
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(dict(kwargs))
        if self.error is not None:
            raise self.error
        index = int(kwargs.get("nextToken", "0"))
        page: dict[str, Any] = {self.key: self.pages[index]}
        if index + 1 < len(self.pages):
            page["nextToken"] = str(index + 1)
        return page


class FakeIot:
    def __init__(self, call: Pages) -> None:
        self.list_thing_groups_for_thing = call


class FakeGreengrass:
    def __init__(self, call: Pages) -> None:
        self.list_component_versions = call


def _cloud() -> ControlPlane:
    return ControlPlane("thing-1", "http://127.0.0.1:9", "http://127.0.0.1:9", "us-east-1")


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        ([[]], []),
        ([[{"groupName": "a"}]], ["a"]),
        ([[{"groupName": "a"}], [{"groupName": "b"}], [{"groupName": "c"}]], ["a", "b", "c"]),
        ([[], [{"groupName": "late"}]], ["late"]),  # an empty page is not the end
    ],
)
def test_thing_groups_reads_every_page(pages: list[list[Any]], expected: list[str]) -> None:
    cloud = _cloud()
    call = Pages("thingGroups", pages)
    cloud._iot = FakeIot(call)
    assert cloud.thing_groups() == expected
    assert len(call.calls) == len(pages)
    assert all(c["thingName"] == "thing-1" for c in call.calls)


def test_thing_groups_of_an_unknown_thing_is_none() -> None:
    cloud = _cloud()
    cloud._iot = FakeIot(
        Pages("thingGroups", [], error=_error("ResourceNotFoundException", "ListThingGroups"))
    )
    assert cloud.thing_groups() is None


def test_versions_reads_every_page() -> None:
    cloud = _cloud()
    pages = [[{"componentVersion": "1.0.0"}], [{"componentVersion": "1.1.0"}]]
    call = Pages("componentVersions", pages)
    cloud._gg = FakeGreengrass(call)
    assert cloud.versions("com.ex.C") == ["1.0.0", "1.1.0"]
    assert call.calls[0]["arn"] == cloud.component_arn("com.ex.C")
    assert call.calls[1]["nextToken"] == "1"


def test_versions_of_an_unpublished_component_is_empty() -> None:
    cloud = _cloud()
    cloud._gg = FakeGreengrass(
        Pages("componentVersions", [], error=_error("ResourceNotFoundException", "List"))
    )
    assert cloud.versions("com.ex.Missing") == []


def test_other_errors_mean_the_control_plane_is_unavailable() -> None:
    cloud = _cloud()
    cloud._iot = FakeIot(Pages("thingGroups", [], error=_error("ThrottlingException", "List")))
    with pytest.raises(ControlPlaneUnavailable, match="ListThingGroupsForThing failed"):
        cloud.thing_groups()


def test_a_repeated_page_token_stops_instead_of_looping() -> None:
    cloud = _cloud()

    def same_page(**kwargs: Any) -> dict[str, Any]:
        return {"thingGroups": [{"groupName": "a"}], "nextToken": "again"}

    cloud._iot = FakeIot(same_page)  # type: ignore[arg-type]
    with pytest.raises(AwsServiceError, match="twice"):
        cloud.thing_groups()
