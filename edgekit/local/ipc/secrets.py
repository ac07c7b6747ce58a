"""``aws.greengrass.SecretManager`` on the local device: cloud sync, disk cache, GetSecretValue.

When a deployment includes the secret manager, the device calls
`SecretManager.configure` with its configuration (the documented keys):

* ``cloudSecrets``: a list of ``{"arn": ..., "labels": [...]}``; each secret is read
  from (emulated) AWS Secrets Manager with ``GetSecretValue``, the ``AWSCURRENT``
  version plus every listed label. A full ARN, a partial ARN (no ``-xxxxxx``
  suffix) or a name all work as ``arn``, as on AWS. A secret that cannot be read
  fails the configuration (`SecretSyncError`, naming the ARN and the fix) and the
  previous cache stays.
* ``periodicRefreshIntervalMin``: when set (> 0), the secrets are read again every
  that many minutes in a background thread; a failed refresh keeps the cache.

The secrets are kept in memory and in one JSON file of the device's storage
(``cache_file``, mode 0600), so a restarted device answers from it without
reaching Secrets Manager, as the real component answers from its cache when
offline. Unlike the real component the file is not encrypted with the device's
private key (the local device has none): it is only protected by its mode.

`SecretManager.lookup` is what IPC ``GetSecretValue`` answers (the handler in
``handlers`` authorizes first): ``secretId`` is the full ARN, the configured ARN
or the secret's name; ``versionId`` or ``versionStage`` (default ``AWSCURRENT``)
picks the version; ``refresh`` reads that secret again from Secrets Manager first
(the cache answers if it cannot). Only secrets of ``cloudSecrets`` are known.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from edgekit.awsapi import error_code, error_message
from edgekit.errors import LocalBackendError
from edgekit.files import write_bytes_atomic

log = logging.getLogger(__name__)

SECRET_MANAGER = "aws.greengrass.SecretManager"
GET_SECRET_VALUE = "aws.greengrass#GetSecretValue"
CURRENT = "AWSCURRENT"
# The six random characters Secrets Manager appends to a secret's name in its ARN.
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


class SecretSyncError(LocalBackendError):
    """A secret of ``cloudSecrets`` could not be read from AWS Secrets Manager."""


class SecretLookupError(Exception):
    """GetSecretValue cannot be answered; ``not_found`` tells ResourceNotFound from the rest."""

    def __init__(self, message: str, *, not_found: bool) -> None:
        super().__init__(message)
        self.not_found = not_found


@dataclass(frozen=True)
class CloudSecret:
    arn: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretManagerConfig:
    secrets: tuple[CloudSecret, ...] = ()
    refresh_minutes: float = 0.0

    @classmethod
    def parse(cls, configuration: dict[str, Any] | None) -> SecretManagerConfig:
        """The component's configuration; SecretSyncError names a malformed field."""
        config = configuration or {}
        raw = config.get("cloudSecrets") or []
        where = f"the configuration of {SECRET_MANAGER}"
        if not isinstance(raw, list):
            raise SecretSyncError(
                f'cloudSecrets in {where} must be a list of {{"arn": ...}} objects, not '
                f"{raw!r}; fix the deployment's configurationUpdate"
            )
        secrets: list[CloudSecret] = []
        for i, entry in enumerate(raw):
            arn = entry.get("arn") if isinstance(entry, dict) else None
            if not isinstance(arn, str) or not arn:
                raise SecretSyncError(
                    f"cloudSecrets[{i}] in {where} has no arn (got {entry!r}); give each entry "
                    'the secret\'s ARN: {"arn": "arn:aws:secretsmanager:...:secret:NAME-abcdef"}'
                )
            labels = entry.get("labels") or []
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise SecretSyncError(
                    f"cloudSecrets[{i}].labels in {where} must be a list of strings, not {labels!r}"
                )
            secrets.append(CloudSecret(arn, tuple(labels)))
        minutes = config.get("periodicRefreshIntervalMin")
        try:
            refresh = float(minutes) if minutes not in (None, "") else 0.0
        except (TypeError, ValueError) as exc:
            raise SecretSyncError(
                f"periodicRefreshIntervalMin in {where} must be a number of minutes, not "
                f"{minutes!r}"
            ) from exc
        return cls(tuple(secrets), max(0.0, refresh))


@dataclass
class _Secret:
    arn: str
    name: str
    configured: str  # the ARN as cloudSecrets gives it (may be partial)
    versions: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "name": self.name,
            "configured": self.configured,
            "versions": self.versions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Secret:
        return cls(data["arn"], data["name"], data["configured"], list(data["versions"]))

    def put(self, version: dict[str, Any]) -> None:
        """Add or replace a version; a stage moves to the newest version that has it."""
        stages = set(version["versionStages"])
        kept = []
        for old in self.versions:
            if old["versionId"] == version["versionId"]:
                continue
            old["versionStages"] = [s for s in old["versionStages"] if s not in stages]
            kept.append(old)
        self.versions = [*kept, version]


def _version_of(response: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    if response.get("SecretString") is not None:
        value["secretString"] = response["SecretString"]
    elif response.get("SecretBinary") is not None:
        value["secretBinary"] = base64.b64encode(response["SecretBinary"]).decode()
    return {
        "versionId": response["VersionId"],
        "versionStages": list(response.get("VersionStages") or []),
        "secretValue": value,
    }


class SecretManager:
    """The secret manager of one device. Thread-safe.

    ``client_factory`` returns a boto3 ``secretsmanager`` client (on the local
    endpoint); ``stopping`` ends the refresh thread.
    """

    def __init__(
        self,
        cache_file: str | os.PathLike[str],
        client_factory: Callable[[], Any],
        stopping: threading.Event,
        logger: logging.Logger | None = None,
    ) -> None:
        self.cache_file = Path(cache_file)
        self._client_factory = client_factory
        self._client: Any = None
        self._stopping = stopping
        self.log = logger or log
        self._lock = threading.RLock()
        self._config: SecretManagerConfig | None = None
        self._secrets: dict[str, _Secret] = {}  # full ARN -> secret
        self._refresher: threading.Thread | None = None
        self._refresh_stop = threading.Event()

    # ------------------------------------------------------------ configuration
    @property
    def active(self) -> bool:
        """Whether the secret manager is deployed (configured) on this device."""
        with self._lock:
            return self._config is not None

    def configure(self, configuration: dict[str, Any] | None, *, offline: bool = False) -> None:
        """Apply the component's configuration (None: the component left the device).

        Reads the secrets from Secrets Manager unless the configuration is the one
        already applied. ``offline``: start from the disk cache, reading from the
        cloud only the secrets it lacks (a restarted device). Raises SecretSyncError.
        """
        if configuration is None:
            with self._lock:
                self._config = None
                self._secrets = {}
                self._stop_refresher()
            self.cache_file.unlink(missing_ok=True)
            return
        config = SecretManagerConfig.parse(configuration)
        with self._lock:
            if config == self._config:
                return
            if offline and not self._secrets:
                self._secrets = self._load_cache()
            cached = {s.configured: s for s in self._secrets.values()}
            fetched: dict[str, _Secret] = {}
            for entry in config.secrets:
                have = cached.get(entry.arn)
                if offline and have is not None:
                    fetched[have.arn] = have
                    continue
                secret = self._fetch(entry)
                fetched[secret.arn] = secret
            self._secrets = fetched
            self._config = config
            self._save()
            self._stop_refresher()
            if config.refresh_minutes > 0:
                self._start_refresher(config.refresh_minutes * 60.0)
        self.log.info(
            "%s: %d secret(s) from AWS Secrets Manager%s",
            SECRET_MANAGER,
            len(config.secrets),
            f", refreshed every {config.refresh_minutes:g} min" if config.refresh_minutes else "",
        )

    def refresh(self) -> None:
        """Read every configured secret again; SecretSyncError keeps the cache as it was."""
        with self._lock:
            config = self._config
            if config is None:
                return
            fresh = {}
            for entry in config.secrets:
                secret = self._fetch(entry)
                fresh[secret.arn] = secret
            self._secrets = fresh
            self._save()

    # ------------------------------------------------------------ GetSecretValue
    def arn_of(self, secret_id: str) -> str | None:
        """The full ARN of a configured secret named by full ARN, configured ARN or name."""
        with self._lock:
            if secret_id in self._secrets:
                return secret_id
            for secret in self._secrets.values():
                if secret_id in (secret.configured, secret.name):
                    return secret.arn
        return None

    def aliases(self, arn: str) -> list[str]:
        """Other ARNs of the secret ``arn``: the one cloudSecrets gives, if it is partial."""
        with self._lock:
            secret = self._secrets.get(arn)
            return [] if secret is None or secret.configured == arn else [secret.configured]

    def lookup(
        self,
        arn: str,
        version_id: str | None = None,
        version_stage: str | None = None,
        *,
        refresh: bool = False,
    ) -> dict[str, Any]:
        """The GetSecretValueResponse payload of the secret ``arn`` (from `arn_of`)."""
        if version_id and version_stage:
            raise SecretLookupError(
                "Both versionId and Stage are set in the request", not_found=False
            )
        stage = None if version_id else (version_stage or CURRENT)
        if refresh:
            self._refresh_one(arn, version_id, stage)
        with self._lock:
            secret = self._secrets.get(arn)
            if secret is None:
                raise SecretLookupError(f"Secret not found {arn}", not_found=True)
            for version in reversed(secret.versions):
                if (version_id and version["versionId"] == version_id) or (
                    stage and stage in version["versionStages"]
                ):
                    return {
                        "secretId": secret.arn,
                        "versionId": version["versionId"],
                        "versionStage": list(version["versionStages"]),
                        "secretValue": copy.deepcopy(version["secretValue"]),
                    }
        what = f"Version Id {version_id}" if version_id else f"Version stage {stage}"
        raise SecretLookupError(
            f"{what} not found for secret {arn}; the device keeps the AWSCURRENT version and "
            f"the labels listed in cloudSecrets of {SECRET_MANAGER}",
            not_found=True,
        )

    # ------------------------------------------------------------ cloud and disk
    def _secretsmanager(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _get(self, secret_id: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = self._secretsmanager().get_secret_value(
                SecretId=secret_id, **kwargs
            )
            return response
        except ClientError as exc:
            raise SecretSyncError(
                f"{SECRET_MANAGER} cannot read the secret {secret_id} from AWS Secrets Manager "
                f"({error_code(exc)}: {error_message(exc)}); create the secret (boto3 "
                "secretsmanager.create_secret) or fix its arn in cloudSecrets of the "
                f"deployment's configuration for {SECRET_MANAGER}, and allow "
                "secretsmanager:GetSecretValue on it to the device role"
            ) from exc
        except BotoCoreError as exc:
            raise SecretSyncError(
                f"{SECRET_MANAGER} cannot reach AWS Secrets Manager to read the secret "
                f"{secret_id} ({exc}); start the local endpoints (`edgekit local up`) and "
                "deploy again"
            ) from exc

    def _fetch(self, entry: CloudSecret) -> _Secret:
        current = self._get(entry.arn, VersionStage=CURRENT)
        secret = _Secret(current["ARN"], current["Name"], entry.arn)
        secret.put(_version_of(current))
        for label in entry.labels:
            if label != CURRENT:
                secret.put(_version_of(self._get(entry.arn, VersionStage=label)))
        return secret

    def _refresh_one(self, arn: str, version_id: str | None, stage: str | None) -> None:
        kwargs = {"VersionId": version_id} if version_id else {"VersionStage": stage}
        try:
            response = self._get(arn, **kwargs)
        except SecretSyncError as exc:
            self.log.warning("GetSecretValue refresh: %s; answering from the cache", exc)
            return
        with self._lock:
            secret = self._secrets.get(arn)
            if secret is not None:
                secret.put(_version_of(response))
                self._save()

    def _load_cache(self) -> dict[str, _Secret]:
        try:
            data = json.loads(self.cache_file.read_text())
            return {s["arn"]: _Secret.from_json(s) for s in data.get("secrets", [])}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log.warning(
                "%s: the secret cache %s cannot be read (%s); reading the secrets from AWS "
                "Secrets Manager again",
                SECRET_MANAGER,
                self.cache_file,
                exc,
            )
            return {}

    def _save(self) -> None:
        data = {"secrets": [s.to_json() for s in self._secrets.values()]}
        text = json.dumps(data, sort_keys=True)
        self.cache_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_bytes_atomic(self.cache_file, text.encode(), mode=0o600)

    # ------------------------------------------------------------ periodic refresh
    def _start_refresher(self, interval_s: float) -> None:
        stop = threading.Event()
        self._refresh_stop = stop

        def wait() -> bool:
            """Sleep one interval; False once the refresh or the device is stopped."""
            deadline = time.monotonic() + interval_s
            while not (stop.is_set() or self._stopping.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                stop.wait(min(remaining, 1.0))
            return False

        def run() -> None:
            while wait():
                try:
                    self.refresh()
                except SecretSyncError as exc:
                    self.log.error("periodic refresh of the secrets failed: %s", exc)

        self._refresher = threading.Thread(target=run, name="secret-manager-refresh", daemon=True)
        self._refresher.start()

    def _stop_refresher(self) -> None:
        self._refresh_stop.set()
        self._refresher = None

    def close(self) -> None:
        with self._lock:
            self._stop_refresher()
