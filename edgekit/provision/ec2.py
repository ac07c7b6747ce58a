"""The AWS backend's strategy: the stack's EC2 instance installs Greengrass and is the device.

The template makes one instance, and several stacks cannot share the thing group the
stack owns, so ``device_count`` must be 1 there (more devices join the group by
installing Greengrass on them with ``--thing-group-name``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from edgekit import clients
from edgekit.errors import ConfigurationError
from edgekit.settings import Settings
from edgekit.spelling import parameter_text


class Ec2Device:
    """AWS backend: the stack's EC2 instance installs Greengrass and is the one device."""

    wait_timeout = 900.0
    wait_poll = 10.0
    stack_poll = 10.0
    running_hint = ""
    provision_hint = (
        "`EDGEKIT_BACKEND=aws edgekit provision` (the device stack and its EC2 core device; "
        "or notebook 01_provision_device with backend='aws')"
    )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check_count(self, count: int) -> None:
        if count != 1:
            raise ConfigurationError(
                f"{parameter_text('device_count', count)}: on the aws backend the device stack "
                "makes exactly one EC2 core device, and the stack owns its thing group, so a "
                f"second stack cannot join it; use {parameter_text('device_count', 1)}. To add "
                "devices, install Greengrass "
                "on them with --thing-group-name set to the stack's ThingGroupName output"
            )

    def prepare(self) -> None:
        try:
            clients.client("sts", self.settings).get_caller_identity()
        except (BotoCoreError, ClientError) as exc:
            raise ConfigurationError(
                f"no usable AWS credentials for region {self.settings.region} ({exc}); "
                "configure them (aws configure, a profile via EDGEKIT_AWS_PROFILE, or the "
                "SageMaker Studio execution role) or use backend='local'"
            ) from exc

    def reachable(self) -> bool:
        return True

    def holds_saved_state(self) -> bool:
        return False  # the services are always up

    def start_devices(self, things: Sequence[str], group: str) -> None:
        # Nothing to start: the instance's user data installed the nucleus, and the stack
        # only completes once it signalled that greengrass.service runs.
        return None

    def remove_devices(self, things: Sequence[str]) -> list[str]:
        # The instance is a stack resource and goes with the stack. The thing, its
        # certificate and the core device record stay (see cloudformation/README.md).
        return []

    def own_devices(self, prefix: str) -> list[str]:
        return []

    def not_ready_hint(self, thing: str, outputs: Mapping[str, str]) -> str:
        instance = outputs.get("InstanceId", "the stack's instance")
        return (
            f"connect to {instance} with SSM Session Manager and read "
            "/var/log/edgekit-userdata.log and /greengrass/v2/logs/greengrass.log"
        )

    def device_count(self, requested: int, existing: int | None) -> int:
        return 1

    def log_location(self, thing: str, component: str | None) -> str:
        log_file = f"{component}.log" if component else "greengrass.log"
        region = self.settings.region
        group = (
            f"/aws/greengrass/UserComponent/{region}/{component}"
            if component
            else f"/aws/greengrass/GreengrassSystemComponent/{region}/System"
        )
        return (
            f"on the device: /greengrass/v2/logs/{log_file} (connect to the instance with SSM "
            f"Session Manager); in CloudWatch Logs, if aws.greengrass.LogManager is deployed: "
            f"log group {group}, stream /YYYY/MM/DD/thing/{thing}"
        )

    def log_tail(self, thing: str, component: str | None, lines: int = 20) -> str:
        return ""  # the log is on the EC2 instance, not on this machine

    def deploy_failed_hint(self, thing: str) -> str:
        return f"; see /greengrass/v2/logs on {thing}"

    def unarchived_dirs(self, component: str, things: Iterable[str] = ()) -> list[Path]:
        return []  # the devices are EC2 instances: nothing of theirs is on this machine


__all__ = ["Ec2Device"]
