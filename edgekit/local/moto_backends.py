"""Capture and restore the state of moto's service backends (pickle, in the moto process).

moto keeps each service's state in a module-level ``BackendDict``
(``moto.s3.models.s3_backends``...): account id -> region -> backend object. The
ones in use are listed in ``BackendDict._instances``. A snapshot is a pickle of
``{(module, name): {account: {region: backend}}}`` for those, made in one pickle so
objects shared between services (a CloudFormation stack's bucket is the S3
backend's bucket) stay shared after a restore. This is the approach moto's
maintainers suggest for server-mode persistence (pickling the backends).

What plain pickle cannot carry is handled by ``_Pickler.reducer_override``:

- a reference to a ``BackendDict`` or an ``AccountSpecificBackend`` is restored as
  the live module-level one, never a copy;
- locks, conditions, events and semaphores are recreated (released / unset), as
  no request is running while a snapshot is taken;
- a ``defaultdict`` whose factory is a lambda (``defaultdict(lambda: defaultdict(dict))``
  in moto's SSM backend) gets a picklable factory that builds the same empty container,
  and a defaultdict/OrderedDict subclass whose ``__init__`` takes other arguments (SSM's
  ``ParameterDict``) is rebuilt without calling it;
- keys and certificates of ``cryptography`` (KMS keys, IoT certificates) are saved as
  DER bytes and loaded back;
- S3 object bodies (temp files / spooled buffers) go through moto's own
  ``FakeKey.__getstate__``, which stores the bytes, and come back in a new buffer.

Must only be imported in the moto server process (it imports moto).
"""

from __future__ import annotations

import collections
import importlib
import io
import pickle
import sys
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto.core.base_backend import AccountSpecificBackend, BackendDict, backend_lock

from edgekit.errors import LocalBackendError

_Key = tuple[str, str]  # (module, attribute) of a module-level BackendDict

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_RLOCK_TYPE = type(threading.RLock())

#: Objects another edgekit module knows how to save (class -> reducer returning a pickle
#: reduce tuple), e.g. a Step Functions execution without its worker thread
#: (``moto_stepfunctions``). Registered in the moto server process before any snapshot.
SNAPSHOT_REDUCERS: dict[type, Any] = {}


def _live_backend_dict(module: str, name: str) -> BackendDict[Any]:
    """The module-level BackendDict ``module.name`` of this process."""
    value = getattr(importlib.import_module(module), name, None)
    if not isinstance(value, BackendDict):
        raise LocalBackendError(
            f"moto has no service backend {module}.{name}; the snapshot was written by another moto"
        )
    return value


def _live_account_backend(module: str, name: str, account_id: str) -> Any:
    return _live_backend_dict(module, name)[account_id]


def _new_condition(lock: Any) -> threading.Condition:
    return threading.Condition(lock)


def _new_semaphore(value: int) -> threading.Semaphore:
    return threading.Semaphore(value)


def _new_bounded_semaphore(value: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(value)


def _load_private_key(der: bytes) -> Any:
    return serialization.load_der_private_key(der, password=None)


def _reduce_crypto(obj: Any) -> tuple[Any, tuple[bytes]] | None:
    """A cryptography key or certificate as (loader, (DER bytes,)); None for anything else."""
    if not type(obj).__module__.startswith("cryptography."):
        return None
    if isinstance(obj, x509.Certificate):
        return x509.load_der_x509_certificate, (obj.public_bytes(serialization.Encoding.DER),)
    if hasattr(obj, "private_bytes"):
        der = obj.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _load_private_key, (der,)
    if hasattr(obj, "public_bytes") and hasattr(obj, "verify"):
        der = obj.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return serialization.load_der_public_key, (der,)
    return None


def _new_mapping(cls: type, factory: Any) -> Any:
    """An empty ``cls`` (a defaultdict or OrderedDict subclass) without calling its __init__."""
    mapping = cls.__new__(cls)
    if factory is not None:
        mapping.default_factory = factory
    return mapping


def _is_local(function: Any) -> bool:
    qualname = str(getattr(function, "__qualname__", ""))
    return "<lambda>" in qualname or "<locals>" in qualname


_EMPTY_TYPES = (dict, list, set, tuple, int, float, str, bytes)


class _EmptyFactory:
    """A picklable ``default_factory`` standing in for a lambda that returns an empty
    container (``lambda: defaultdict(dict)`` becomes ``_EmptyFactory(defaultdict, dict)``)."""

    def __init__(self, kind: type, inner: Any = None) -> None:
        self.kind = kind
        self.inner = inner

    def __call__(self) -> Any:
        if self.kind is collections.defaultdict:
            return collections.defaultdict(self.inner)
        return self.kind()

    @classmethod
    def of(cls, factory: Any) -> _EmptyFactory:
        sample = factory()
        if type(sample) is collections.defaultdict and not sample:
            inner = sample.default_factory
            return cls(collections.defaultdict, cls.of(inner) if _is_local(inner) else inner)
        if type(sample) in _EMPTY_TYPES and not sample:
            return cls(type(sample))
        raise LocalBackendError(
            f"cannot snapshot a moto defaultdict whose factory {factory.__qualname__} returns "
            f"{type(sample).__name__} {sample!r}; report this with your moto version"
        )


def _key_of(backend_dict: BackendDict[Any]) -> _Key:
    """Where ``backend_dict`` lives: the module of its backend class, searched by identity."""
    candidates = [backend_dict.backend.__module__]
    candidates += [m for m in list(sys.modules) if m.startswith("moto.") and m not in candidates]
    for module_name in candidates:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for attr, value in vars(module).items():
            if value is backend_dict:
                return module_name, attr
    raise LocalBackendError(
        f"cannot snapshot moto's {backend_dict.service_name!r} backend: it is not a module-level "
        "BackendDict, so it could not be restored; report this with your moto version"
    )


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, keys: dict[int, _Key]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._keys = keys

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BackendDict):
            return _live_backend_dict, self._key(obj)
        if isinstance(obj, AccountSpecificBackend):
            for backend_dict in BackendDict._instances:
                if backend_dict.get(obj.account_id) is obj:
                    return _live_account_backend, (*self._key(backend_dict), obj.account_id)
            raise LocalBackendError(
                f"cannot snapshot moto's {obj.service_name!r} backend of account "
                f"{obj.account_id}: it belongs to no BackendDict in use"
            )
        for cls, reducer in SNAPSHOT_REDUCERS.items():
            if isinstance(obj, cls):
                return reducer(obj)
        if isinstance(obj, collections.defaultdict | collections.OrderedDict):
            return self._reduce_dict(obj)
        crypto = _reduce_crypto(obj)
        if crypto is not None:
            return crypto
        if isinstance(obj, _LOCK_TYPES):
            # threading.Lock, not type(obj): ``_thread.lock`` cannot be looked up by name.
            return (threading.RLock if isinstance(obj, _RLOCK_TYPE) else threading.Lock), ()
        if isinstance(obj, threading.Condition):
            return _new_condition, (obj._lock,)  # type: ignore[attr-defined]
        if isinstance(obj, threading.Event):
            return threading.Event, ()
        if isinstance(obj, threading.BoundedSemaphore):
            return _new_bounded_semaphore, (obj._initial_value,)  # type: ignore[attr-defined]
        if isinstance(obj, threading.Semaphore):
            return _new_semaphore, (obj._value,)  # type: ignore[attr-defined]
        return NotImplemented

    @staticmethod
    def _reduce_dict(obj: dict[Any, Any]) -> Any:
        """A defaultdict or OrderedDict: their own ``__reduce__`` calls ``type(obj)(factory)``,
        which breaks for a subclass whose ``__init__`` takes other arguments (moto's SSM
        ``ParameterDict(account_id, region_name)``), and a lambda factory cannot be pickled."""
        factory = getattr(obj, "default_factory", None)
        if factory is not None and _is_local(factory):
            factory = _EmptyFactory.of(factory)
        exact = type(obj) in (collections.defaultdict, collections.OrderedDict)
        if exact and factory is getattr(obj, "default_factory", None):
            return NotImplemented  # pickle's own way works
        state = getattr(obj, "__dict__", None) or None
        return _new_mapping, (type(obj), factory), state, None, iter(obj.items())

    def _key(self, backend_dict: BackendDict[Any]) -> _Key:
        key = self._keys.get(id(backend_dict))
        if key is None:
            key = self._keys[id(backend_dict)] = _key_of(backend_dict)
        return key


def dump_backends() -> tuple[memoryview, list[str]]:
    """Pickle every moto backend in use; returns the bytes (not copied) and the service names.

    The caller makes sure no request changes a backend meanwhile (``moto_keeper``).
    """
    keys: dict[int, _Key] = {}
    state: dict[_Key, dict[str, dict[str, Any]]] = {}
    services: list[str] = []
    with backend_lock:
        for backend_dict in list(BackendDict._instances):
            key = keys[id(backend_dict)] = _key_of(backend_dict)
            accounts = {
                account: dict(dict.items(by_region))
                for account, by_region in dict.items(backend_dict)
                if len(by_region)
            }
            if accounts:
                state[key] = accounts
                services.append(str(backend_dict.service_name))
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, keys).dump(state)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        raise LocalBackendError(
            f"cannot snapshot the moto state of {', '.join(sorted(services))}: {exc!r} (an "
            "object moto keeps cannot be saved); the previous snapshot is kept"
        ) from exc
    return buffer.getbuffer(), sorted(set(services))


def restore_backends(payload: bytes, source: str) -> list[str]:
    """Put the backends pickled in ``payload`` in place of this process's (empty) ones.

    ``source`` names the file in errors. Returns the service names restored.
    """
    try:
        state = pickle.loads(payload)
    except Exception as exc:  # any class or attribute moto renamed, a damaged stream...
        raise LocalBackendError(
            f"cannot restore the local AWS state (moto) from {source}: {exc!r}. Nothing was "
            "changed. To start the emulated AWS services empty, run `edgekit local up "
            "--fresh` (it keeps the file, renamed to *.bak); or move or delete the file "
            "yourself"
        ) from exc
    services: list[str] = []
    with backend_lock:
        for (module, name), accounts in state.items():
            backend_dict = _live_backend_dict(module, name)
            for account_id, by_region in accounts.items():
                live = backend_dict[account_id]
                for region, backend in by_region.items():
                    dict.__setitem__(live, region, backend)
            services.append(str(backend_dict.service_name))
    return sorted(set(services))


__all__ = ["SNAPSHOT_REDUCERS", "dump_backends", "restore_backends"]
