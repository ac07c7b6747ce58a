"""Proof of inspection: a device counts as done only when it shows it inspects with the package.

Greengrass saying SUCCEEDED means the components' lifecycle steps ran; it does not mean
the inference app inspects images with the package that was deployed (the agent may
refuse the package a second later, the app may die after a few seconds, or keep an
older package). A device is PROVEN when all of these hold:

- Greengrass reports the deployment SUCCEEDED on it (and the components at their new
  versions, see `edgekit.deploy.status`);
- its latest health message (``qualityinspection/health``, schema v2) reports, for the
  current model, ``package_sha256`` equal to the deployed package's (and the agent's
  ``key_fingerprint`` when the criteria name one);
- at least ``min_results`` results of that package arrived since the deployment started,
  from one run of the app: its latest health counts at least ``min_results`` results
  published since the app started (``since_start``), and that many arrived stamped at or
  after its ``started_at``. An app that dies a few seconds after it starts and is restarted
  by Greengrass never gathers them in one run, however many runs it makes.

`ProofCollector` subscribes to the results and health topics *before* the deployment
is created and keeps, per device, the latest health and the results since ``since``;
`edgekit.deploy.wait` feeds it the Greengrass side and turns it into a verdict. Tests
feed it synthetic messages with :meth:`ProofCollector.feed`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from edgekit.errors import ConfigurationError
from edgekit.results import Intake, Message, ResultsSubscriber, percentile, subscriber_for
from edgekit.schemas import HEALTH, RESULT, parse_timestamp
from edgekit.schemas.health_shadow import current_model
from edgekit.settings import Settings
from edgekit.spelling import parameter_text

#: Default number of results a device must publish with the new package after the deployment.
DEFAULT_MIN_RESULTS = 3
#: Device clocks may run a little behind ours: messages this much older than ``since`` count.
CLOCK_SKEW = timedelta(seconds=2)
PROVEN, PENDING, FAILED = "PROVEN", "PENDING", "FAILED"
DONE_STATUSES = ("SUCCEEDED", "COMPLETED")


def short(sha: str | None) -> str:
    """The first 12 hex digits of a sha256 (``-`` for None), for tables and messages."""
    return sha[:12] if sha else "-"


@dataclass
class ProofCriteria:
    """What every device must prove: the package (sha256 of the archive as published),
    its model name and version, optionally the agent's key fingerprint, and how many
    results of it must arrive after ``since`` (UTC)."""

    package_sha256: str
    model_name: str
    model_version: str
    key_fingerprint: str | None = None
    min_results: int = DEFAULT_MIN_RESULTS
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.min_results < 1:
            raise ConfigurationError(
                f"{parameter_text('min_results', self.min_results)}: a device proves "
                f"inspection with at least 1 result; use {parameter_text('min_results', 1)} "
                "or more"
            )
        if self.since.tzinfo is None:
            raise ConfigurationError(f"ProofCriteria.since={self.since!r} must be timezone-aware")

    @property
    def package(self) -> str:
        """``name version (sha256 abcdef012345)`` for messages."""
        return f"{self.model_name} {self.model_version} (sha256 {short(self.package_sha256)})"


@dataclass
class DeviceProof:
    """One device's evidence and verdict: PROVEN, PENDING, or FAILED with a named reason."""

    thing: str
    greengrass_status: str | None = None
    package_sha256: str | None = None
    key_fingerprint: str | None = None
    results: int = 0
    errors: int = 0
    p95_ms: float | None = None
    health_state: str | None = None
    problem: str | None = None
    state: str = PENDING
    reason: str | None = None
    component: str | None = None
    """The component a FAILED verdict blames (None: not known)."""

    @property
    def proven(self) -> bool:
        return self.state == PROVEN

    @property
    def failed(self) -> bool:
        return self.state == FAILED

    def row(self) -> dict[str, str]:
        """A table row: device, Greengrass status, proof, package, results, errors, p95, health."""
        return {
            "thing": self.thing,
            "greengrass": self.greengrass_status or "-",
            "proof": self.state,
            "package": short(self.package_sha256),
            "results": str(self.results),
            "errors": str(self.errors),
            "p95_ms": "-" if self.p95_ms is None else f"{self.p95_ms:.1f}",
            "health": self.health_state or "-",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "thing": self.thing,
            "greengrass_status": self.greengrass_status,
            "package_sha256": self.package_sha256,
            "key_fingerprint": self.key_fingerprint,
            "results": self.results,
            "errors": self.errors,
            "p95_ms": self.p95_ms,
            "health_state": self.health_state,
            "problem": self.problem,
            "state": self.state,
            "reason": self.reason,
            "component": self.component,
        }


PROOF_COLUMNS = [
    ("thing", "device"),
    ("greengrass", "greengrass"),
    ("proof", "proof"),
    ("package", "package sha256"),
    ("results", "results"),
    ("errors", "errors"),
    ("p95_ms", "p95 ms"),
    ("health", "health"),
]


def proof_table(proofs: Iterable[DeviceProof]) -> str:
    """Plain-text table of :data:`PROOF_COLUMNS`, one line per device."""
    rows = [[title.upper() for _key, title in PROOF_COLUMNS]]
    rows += [[p.row()[key] for key, _title in PROOF_COLUMNS] for p in proofs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(PROOF_COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _when(message: Mapping[str, Any]) -> datetime | None:
    try:
        return parse_timestamp(str(message.get("timestamp")))
    except ValueError:
        return None


class ProofCollector:
    """Subscribes to the results and health topics and keeps each device's evidence.

    >>> with ProofCollector(settings, criteria, things) as proof:  # doctest: +SKIP
    ...     ... create the deployment, then poll Greengrass and call proof.set_status ...
    ...     proof.proofs()

    ``things``: the devices expected to prove themselves (more may be added with
    :meth:`expect`); messages from other devices are kept but not judged. Thread-safe:
    the transport's network thread calls :meth:`feed`.
    """

    def __init__(
        self,
        settings: Settings,
        criteria: ProofCriteria,
        things: Iterable[str] | None = None,
        *,
        subscriber: ResultsSubscriber | None = None,
    ) -> None:
        self.settings = settings
        self.criteria = criteria
        self._lock = threading.Lock()
        self._things: list[str] = sorted(set(things or ()))
        self._health: dict[str, dict[str, Any]] = {}
        self._results: dict[str, list[dict[str, Any]]] = {}
        self._problems: dict[str, str] = {}
        self._status: dict[str, str | None] = {}
        self._failed: dict[str, tuple[str, str | None]] = {}
        self._intakes = {
            schema: Intake(schema=schema, keep_results=False, max_invalid=1)
            for schema in (RESULT, HEALTH)
        }
        self._subscriber = subscriber
        self._owned = subscriber is None
        self._topics: list[str] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> ProofCollector:
        """Connect and subscribe to both topics (returns once the broker acknowledged)."""
        if self._subscriber is None:
            self._subscriber = subscriber_for(self.settings)
        self._subscriber.connect()
        try:
            for topic, schema in (
                (self.settings.results_topic, RESULT),
                (self.settings.health_topic, HEALTH),
            ):
                self._subscriber.subscribe(topic, lambda m, s=schema: self.feed(m, schema=s))
                self._topics.append(topic)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Unsubscribe (closing a subscriber we made); safe to call twice."""
        sub, topics = self._subscriber, list(self._topics)
        self._topics.clear()
        if sub is None:
            return
        if self._owned:
            self._subscriber = None
            sub.close()
        else:
            for topic in topics:
                sub.unsubscribe(topic)

    def __enter__(self) -> ProofCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- input ----------------------------------------------------------------------------

    def feed(
        self, message: Message | Mapping[str, Any] | bytes | str, *, schema: str | None = None
    ) -> None:
        """Take one result or health message (a `Message`, a dict, or JSON text).

        The schema is ``schema`` if given, else the message's topic, else "health" for a
        message with ``images_processed`` and "result" otherwise. Invalid messages are
        noted as the device's problem when its thing name can be read, never raised.
        """
        if isinstance(message, Message):
            raw = message
            if schema is None:
                schema = HEALTH if message.topic == self.settings.health_topic else RESULT
        else:
            if isinstance(message, Mapping):
                payload = json.dumps(message).encode()
                guess = HEALTH if "images_processed" in message else RESULT
            else:
                payload = message.encode() if isinstance(message, str) else bytes(message)
                guess = HEALTH if b'"images_processed"' in payload else RESULT
            schema = schema or guess
            topic = self.settings.health_topic if schema == HEALTH else self.settings.results_topic
            raw = Message(topic=topic, payload=payload)
        with self._lock:
            intake = self._intakes[schema]
            invalid = intake.invalid_count
            accepted = intake.accept(raw)
            if accepted is None:
                if intake.invalid_count > invalid:
                    bad = intake.invalid[-1]
                    thing = _thing_of(raw.payload)
                    if thing:
                        self._problems[thing] = bad.reason
                return
            thing = str(accepted.get("thing_name"))
            self._problems.pop(thing, None)  # a valid message again
            when = _when(accepted)
            if when is None or when < self.criteria.since - CLOCK_SKEW:
                return  # from before the deployment
            if schema == HEALTH:
                latest = self._health.get(thing)
                if latest is None or (_when(latest) or when) <= when:
                    self._health[thing] = accepted
            elif self._counts(accepted):
                self._results.setdefault(thing, []).append(accepted)

    def _counts(self, result: Mapping[str, Any]) -> bool:
        """Whether a result is one of the deployed package's."""
        model = result.get("model") or {}
        sha = model.get("package_sha256")
        if sha:
            return bool(sha == self.criteria.package_sha256)
        # A result without the field (an older app): name and version must match, and the
        # health message must still prove the package.
        return (model.get("name"), model.get("version")) == (
            self.criteria.model_name,
            self.criteria.model_version,
        )

    def expect(self, things: Iterable[str]) -> None:
        """Add devices that must prove themselves (a group's member list may grow)."""
        with self._lock:
            self._things = sorted(set(self._things) | set(things))

    def set_status(self, thing: str, greengrass_status: str | None) -> None:
        """What Greengrass reports for ``thing`` (``SUCCEEDED``, ``IN_PROGRESS``...)."""
        with self._lock:
            self._status[thing] = greengrass_status

    def fail(self, thing: str, reason: str, component: str | None = None) -> None:
        """Mark ``thing`` FAILED with a named reason, blaming ``component`` (the first is kept)."""
        with self._lock:
            self._failed.setdefault(thing, (reason, component))

    # --- output ---------------------------------------------------------------------------

    @property
    def things(self) -> list[str]:
        with self._lock:
            return list(self._things)

    def health(self, thing: str) -> dict[str, Any] | None:
        """The latest health message of ``thing`` since ``since`` (None: none yet)."""
        with self._lock:
            latest = self._health.get(thing)
            return None if latest is None else dict(latest)

    def results(self, thing: str) -> list[dict[str, Any]]:
        """The results of the deployed package from ``thing`` since ``since``, in arrival order."""
        with self._lock:
            return list(self._results.get(thing, []))

    def proof(self, thing: str) -> DeviceProof:
        """``thing``'s evidence and verdict now."""
        with self._lock:
            return self._proof(thing)

    def proofs(self) -> dict[str, DeviceProof]:
        """Every expected device's proof, by thing name."""
        with self._lock:
            return {thing: self._proof(thing) for thing in self._things}

    def _proof(self, thing: str) -> DeviceProof:
        criteria = self.criteria
        proof = DeviceProof(thing, greengrass_status=self._status.get(thing))
        results = self._results.get(thing, [])
        proof.results = len(results)
        totals = [
            float(r["latency_ms"]["total"])
            for r in results
            if isinstance(r.get("latency_ms"), Mapping) and "total" in r["latency_ms"]
        ]
        health = self._health.get(thing)
        entry = current_model(health) if health else None
        run = AppRun(results=len(results))
        if health is not None:
            proof.health_state = str(health.get("state")) if health.get("state") else None
            run = AppRun.of(health, entry, results)
        if entry is not None:
            proof.package_sha256 = entry.get("package_sha256")
            proof.key_fingerprint = entry.get("key_fingerprint")
            counts = entry.get("since_start") or {}
            proof.errors = int(counts.get("errors") or 0)
            if not totals:
                p95 = (counts.get("latency_ms") or {}).get("p95")
                proof.p95_ms = None if p95 is None else float(p95)
        if totals:
            proof.p95_ms = round(percentile(totals, 95), 3)
        proof.problem = self._problems.get(thing) or _evidence_gap(
            criteria, health, entry, proof, run
        )
        if thing in self._failed:
            proof.state = FAILED
            proof.reason, proof.component = self._failed[thing]
        elif proof.problem is None and proof.greengrass_status in DONE_STATUSES:
            proof.state = PROVEN
        return proof


@dataclass(frozen=True)
class AppRun:
    """The evidence of the app's current run (since the ``started_at`` of its latest health):
    the results its health counts as published since it started, and the results received
    stamped at or after that start. None: the health does not say (an older app)."""

    started_at: str | None = None
    published: int | None = None
    results: int = 0

    @classmethod
    def of(
        cls,
        health: Mapping[str, Any],
        entry: Mapping[str, Any] | None,
        results: list[dict[str, Any]],
    ) -> AppRun:
        started_text = health.get("started_at")
        started = _when({"timestamp": started_text}) if started_text else None
        counted = results
        if started is not None:
            counted = [r for r in results if (_when(r) or started) >= started]
        published = None
        if entry is not None and isinstance(entry.get("since_start"), Mapping):
            published = int(entry["since_start"].get("results_published") or 0)
        return cls(
            started_at=str(started_text) if started is not None else None,
            published=published,
            results=len(counted),
        )


def _evidence_gap(
    criteria: ProofCriteria,
    health: Mapping[str, Any] | None,
    entry: Mapping[str, Any] | None,
    proof: DeviceProof,
    run: AppRun | None = None,
) -> str | None:
    """What the messages still lack for a proof (None: the messages prove it)."""
    if health is None:
        return "no health message since the deployment started"
    if entry is None:
        return (
            f"health (state {health.get('state')}) reports no current model: the app has not "
            "loaded a package (or is older than health v2, which reports 'models')"
        )
    if entry.get("package_sha256") != criteria.package_sha256:
        return (
            f"health reports package {entry.get('name')} {entry.get('version')} sha256 "
            f"{short(entry.get('package_sha256'))}, not the deployed {criteria.package}"
        )
    if criteria.key_fingerprint and entry.get("key_fingerprint") != criteria.key_fingerprint:
        return (
            f"health reports the agent verified the package with key "
            f"{entry.get('key_fingerprint')}, not the deployed key {criteria.key_fingerprint}"
        )
    if proof.results < criteria.min_results:
        return (
            f"{proof.results} of {criteria.min_results} results of {criteria.package} "
            "received since the deployment started"
        )
    run = run or AppRun(results=proof.results)
    in_run = min(run.results, proof.results if run.published is None else run.published)
    if in_run < criteria.min_results:
        return (
            f"the app's current run (started {run.started_at or '-'}) has {in_run} of "
            f"{criteria.min_results} results of {criteria.package} (its health counts "
            f"{'-' if run.published is None else run.published} published, {run.results} "
            f"received): the others came from an earlier run of the app (did it restart?), "
            "or its next health message has not counted them yet"
        )
    return None


def _thing_of(payload: bytes) -> str | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    thing = value.get("thing_name") if isinstance(value, dict) else None
    return thing if isinstance(thing, str) and thing else None


__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_MIN_RESULTS",
    "FAILED",
    "PENDING",
    "PROOF_COLUMNS",
    "PROVEN",
    "DeviceProof",
    "ProofCollector",
    "ProofCriteria",
    "current_model",
    "proof_table",
    "short",
]
