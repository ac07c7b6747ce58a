"""One component's lifecycle: install, start, supervise, stop, as the nucleus runs it.

States follow Greengrass: NEW -> INSTALLED -> STARTING (a Startup step) ->
RUNNING -> (Run exits 0) FINISHED, or ERRORED on a failing step; an errored
component is recovered and started again, and after three errors within an
hour it is BROKEN until a deployment brings it again. Each script runs as
``/bin/sh -c`` in ``{work:path}`` in its own session, so stopping a component
kills every process it started (grandchildren included), and writes to
``<root>/logs/<component>.log``. Each session is recorded in the host's
`GroupLedger` until it has ended, so a runtime killed with SIGKILL leaves a
record of what to end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgekit.errors import LocalBackendError
from edgekit.local.device.interpolate import ComponentPaths
from edgekit.local.device.recipe import ResolvedRecipe, Step
from edgekit.local.process import GroupLedger, group_members

NEW, INSTALLED, STARTING, RUNNING = "NEW", "INSTALLED", "STARTING", "RUNNING"
STOPPING, ERRORED, BROKEN, FINISHED = "STOPPING", "ERRORED", "BROKEN", "FINISHED"
STATES = (NEW, INSTALLED, STARTING, RUNNING, STOPPING, ERRORED, BROKEN, FINISHED)
READY_STATES = (RUNNING, FINISHED)

MAX_ERRORS = 3  # ERRORED this many times within ERROR_WINDOW -> BROKEN
ERROR_WINDOW = 3600.0
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a component's processes
BOOTSTRAP_RESTART_CODES = (100, 101)


class ServiceHost(Protocol):
    """What a component needs from the runtime that hosts it."""

    condition: threading.Condition  # notified on every state change of any component
    # Where the scripts' process groups are recorded while they may run (None: nowhere;
    # a host without the attribute records nothing either).
    groups: GroupLedger | None

    def component_env(self, service: ComponentService) -> dict[str, str]: ...

    def service_state(self, name: str) -> str | None: ...

    def state_changed(self, service: ComponentService) -> None: ...

    def log(self, level: str, message: str) -> None: ...


@dataclass
class ComponentSpec:
    """A component version as it runs here: recipe, configuration, interpolated lifecycle."""

    name: str
    version: str
    root: bool
    recipe: ResolvedRecipe
    configuration: dict[str, Any]
    dependencies: dict[str, str]  # dependency name -> HARD / SOFT (provided ones left out)
    steps: dict[str, Step | None]
    setenv: dict[str, str]
    paths: ComponentPaths
    log_file: Path
    bootstrap: bool = False  # run Bootstrap before Install (first deployment of this version)
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self, kind: str) -> Any:
        """What decides a reinstall (``install``) or a restart (``start``) when it changes."""

        def step(name: str) -> Any:
            s = self.steps.get(name)
            return None if s is None else (s.script, s.timeout, sorted(s.setenv.items()), s.skipif)

        if kind == "install":
            return (self.version, step("bootstrap"), step("install"))
        return (sorted(self.setenv.items()), step("startup"), step("run"), step("recover"))


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the process group exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path("/proc").is_dir() or bool(group_members(pgid))


class ComponentService:
    """Runs one component version; thread-safe: the runtime calls start/stop from its thread."""

    def __init__(self, spec: ComponentSpec, host: ServiceHost, *, installed: bool = False) -> None:
        self.spec = spec
        self.host = host
        self.state = NEW
        self.details = ""
        self.changed_at = time.time()
        self.installed = installed
        self.last_exit_code: int | None = None
        self.runs = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._ipc_error: str | None = None
        self._thread: threading.Thread | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._groups: GroupLedger | None = getattr(host, "groups", None)
        self._errors: deque[float] = deque()
        self._started = False
        self._privilege_noted = False

    # --- state ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    def set_state(self, state: str, details: str = "") -> None:
        if state == self.state and details == self.details:
            return
        self.state = state
        self.details = details
        self.changed_at = time.time()
        self.log_line(f"state {state}" + (f": {details}" if details else ""))
        self.host.state_changed(self)

    def log_line(self, message: str) -> None:
        """A runtime note in the component's log (between the scripts' own output)."""
        try:
            self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.spec.log_file.open("a") as fh:
                fh.write(f"{_timestamp()} [edgekit] {self.name}: {message}\n")
        except OSError as exc:
            self.host.log("WARNING", f"cannot write the log of {self.name}: {exc}")

    def report_error(self, reason: str) -> None:
        """IPC UpdateState(ERRORED): treat like a failed script and restart."""
        self._ipc_error = reason
        self._wake.set()
        self._signal_all(signal.SIGTERM)

    def reset_errors(self) -> None:
        self._errors.clear()

    # --- control (called by the runtime) ---------------------------------------------------

    def start(self) -> None:
        """Install if needed, wait for dependencies, start; returns at once."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._wake.clear()
            self._ipc_error = None
            self._thread = threading.Thread(
                target=self._work, name=f"component-{self.name}", daemon=True
            )
            self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Run Shutdown, end every process of the component, wait for its thread."""
        with self._lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        with self.host.condition:
            self.host.condition.notify_all()
        step = self.spec.steps.get("shutdown")
        if self._started and step is not None and self.state not in (BROKEN, NEW):
            self.set_state(STOPPING)
            self._run_step("shutdown", step, allow_after_stop=True)
        self._terminate_all()
        if thread is not None:
            thread.join(timeout)
        self._started = False
        self.set_state(INSTALLED if self.installed else NEW)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.installed:
                    error = self._install()
                    if self._stop.is_set():
                        return
                    if error is not None:
                        if self._errored(error):
                            return
                        continue
                    self.installed = True
                    self.set_state(INSTALLED)
                if not self._wait_dependencies():
                    return
                outcome, reason = self._run_service()
                if outcome != "errored":
                    return
                if self._errored(reason):
                    return
                self._recover()
        except Exception as exc:  # a bug here must show up as BROKEN, not a dead thread
            self.host.log("ERROR", f"component {self.name}: runtime error: {exc!r}")
            self.set_state(BROKEN, f"device runtime error: {exc}")

    def _errored(self, reason: str) -> bool:
        """Record an error; True if the component is now BROKEN."""
        now = time.time()
        self._errors.append(now)
        while self._errors and now - self._errors[0] > ERROR_WINDOW:
            self._errors.popleft()
        self._terminate_all()
        if len(self._errors) >= MAX_ERRORS:
            self.set_state(BROKEN, f"{reason} ({len(self._errors)} errors)")
            return True
        self.set_state(ERRORED, reason)
        return False

    def _recover(self) -> None:
        step = self.spec.steps.get("recover")
        if step is not None and not self._stop.is_set():
            self._run_step("recover", step)

    def _install(self) -> str | None:
        for key in self.spec.recipe.ignored_steps:
            self.log_line(
                f"WARNING lifecycle step {key} is not one Greengrass runs (Bootstrap, Install, "
                "Startup, Run, Shutdown, Recover): ignored"
            )
        if self.spec.bootstrap:
            step = self.spec.steps.get("bootstrap")
            if step is not None:
                code, why = self._run_step("bootstrap", step)
                if code in BOOTSTRAP_RESTART_CODES:
                    self.log_line(
                        f"bootstrap asked for a {'runtime' if code == 100 else 'device'} restart "
                        f"(exit {code}); the local runtime does not restart itself, continuing"
                    )
                elif code != 0:
                    return why
            self.spec.bootstrap = False
        step = self.spec.steps.get("install")
        if step is None:
            return None
        code, why = self._run_step("install", step)
        return None if code == 0 else why

    def _wait_dependencies(self) -> bool:
        deps = list(self.spec.dependencies)
        if not deps:
            return not self._stop.is_set()
        with self.host.condition:
            while not self._stop.is_set():
                if all(self.host.service_state(d) in READY_STATES for d in deps):
                    return True
                self.host.condition.wait(0.5)
        return False

    def _run_service(self) -> tuple[str, str]:
        startup = self.spec.steps.get("startup")
        run = self.spec.steps.get("run")
        self._started = True
        self.runs += 1
        if startup is not None:
            self.set_state(STARTING)
            code, why = self._run_step("startup", startup)
            if self._stop.is_set():
                return "stopped", ""
            if code != 0:
                return "errored", why
            self.set_state(RUNNING)
            while not self._stop.is_set() and self._ipc_error is None:
                self._wake.wait(1.0)
            if self._ipc_error is not None and not self._stop.is_set():
                return "errored", f"reported ERRORED through IPC: {self._ipc_error}"
            return "stopped", ""
        if run is not None:
            code, why = self._run_step("run", run, on_spawn=lambda: self.set_state(RUNNING))
            if self._stop.is_set():
                return "stopped", ""
            if self._ipc_error is not None:
                return "errored", f"reported ERRORED through IPC: {self._ipc_error}"
            if code != 0:
                return "errored", why
            self.set_state(FINISHED)
            return "finished", ""
        self.set_state(FINISHED)
        return "finished", ""

    # --- processes -------------------------------------------------------------------------

    def _skip(self, step: Step, env: dict[str, str]) -> bool:
        if not step.skipif:
            return False
        kind, _, arg = step.skipif.strip().partition(" ")
        arg = arg.strip()
        if kind.lower() == "onpath":
            return shutil.which(arg, path=env.get("PATH")) is not None
        if kind.lower() == "exists":
            return os.path.exists(arg)
        self.log_line(f"unknown Skipif {step.skipif!r} (use 'onpath X' or 'exists F'); running")
        return False

    def _run_step(
        self,
        name: str,
        step: Step,
        *,
        allow_after_stop: bool = False,
        on_spawn: Any = None,
    ) -> tuple[int, str]:
        """Run one script to its end (or timeout); returns (exit code, failure text)."""
        env = self.host.component_env(self)
        env.update(self.spec.setenv)
        env.update(step.setenv)
        if self._skip(step, env):
            self.log_line(f"{name}: skipped ({step.skipif})")
            if on_spawn is not None:
                on_spawn()
            return 0, ""
        if step.requires_privilege and os.geteuid() != 0 and not self._privilege_noted:
            self._privilege_noted = True
            self.log_line(f"{name}: RequiresPrivilege ignored, running as the runtime's user")
        work = self.spec.paths.work
        work.mkdir(parents=True, exist_ok=True)
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._stop.is_set() and not allow_after_stop:
                return -1, f"{name} not started: component stopping"
            with self.spec.log_file.open("ab") as log:
                log.write(f"{_timestamp()} [edgekit] {self.name}: {name} starting\n".encode())
                log.flush()
                try:
                    proc = subprocess.Popen(
                        ["/bin/sh", "-c", step.script],
                        cwd=work,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        close_fds=True,
                    )
                except OSError as exc:
                    return -1, f"{name} script could not start: {exc}"
            self._procs[proc.pid] = proc
            self._record_group(proc.pid, name)
        if on_spawn is not None:
            on_spawn()
        try:
            code = proc.wait(timeout=step.timeout)
        except subprocess.TimeoutExpired:
            self._terminate(proc.pid)
            self.log_line(f"{name} timed out after {step.timeout:g} s")
            return -1, f"{name} script timed out after {step.timeout:g} s"
        self.last_exit_code = code
        self.log_line(f"{name} exited with code {code}")
        if code != 0 and name in ("run", "startup", "install", "bootstrap", "recover"):
            # Leftover children of a failed script would outlive the retry.
            self._terminate(proc.pid)
        if code < 0:
            return code, f"{name} script was killed by signal {-code}"
        return code, f"{name} script exited with code {code}"

    def _record_group(self, pgid: int, step: str) -> None:
        if self._groups is None:
            return
        try:
            self._groups.add(pgid, f"{self.name} {step}")
        except (OSError, LocalBackendError) as exc:
            self.host.log(
                "ERROR",
                f"component {self.name}: cannot record process group {pgid} of {step} in "
                f"{self._groups.path} ({exc}); it would outlive a crash of the runtime",
            )

    def _forget_group(self, pgid: int) -> None:
        if self._groups is None:
            return
        try:
            self._groups.remove(pgid)
        except (OSError, LocalBackendError) as exc:
            self.host.log(
                "ERROR",
                f"component {self.name}: cannot forget ended process group {pgid} in "
                f"{self._groups.path} ({exc}); the next runtime start skips it (it has ended)",
            )

    def _signal_all(self, sig: int) -> None:
        with self._lock:
            pgids = list(self._procs)
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)

    def _terminate(self, pgid: int, grace: float = STOP_GRACE) -> None:
        """SIGTERM a process group, SIGKILL it after ``grace`` seconds, reap its leader."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        proc = self._procs.get(pgid)
        deadline = time.monotonic() + grace
        while True:
            if proc is not None:
                proc.poll()
            if not _group_alive(pgid):
                break
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                if proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=2.0)
                break
            time.sleep(0.02)
        with self._lock:
            known = self._procs.pop(pgid, None) is not None
        if known:
            self._forget_group(pgid)

    def _terminate_all(self) -> None:
        with self._lock:
            pgids = list(self._procs)
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
        for pgid in pgids:
            self._terminate(pgid)
