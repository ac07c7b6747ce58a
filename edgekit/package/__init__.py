"""Signed, versioned model packages: keygen, build, verify, open.

A package is a reproducible ``.tar.gz`` holding the model file(s), a
``manifest.json`` (name, semver version, runtime, input, preprocessing,
labels, threshold, SHA-256 of every file, metrics) and ``manifest.sig``, the
base64 Ed25519 signature over the exact manifest bytes.

Owns: the package format (manifest, archive, keys), building, verifying and
opening packages, and loading one into a runtime (:mod:`edgekit.package.loading`:
the manifest's ``runtime`` field picks the runtime from :mod:`edgekit.runtimes`).

Must not import: edgekit.agent, edgekit.edge, the AWS/workflow modules
(clients, registry, components, deploy, ...) or the CLI. It may import
edgekit.compile (the compile record), edgekit.model and edgekit.runtimes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import lazy_attributes
from edgekit.package.keys import (
    KeyPair,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
)
from edgekit.package.loading import load_model
from edgekit.package.manifest import FileEntry, Manifest, validate_version
from edgekit.package.verify import OpenedPackage, open_package, verify_package

if TYPE_CHECKING:  # pragma: no cover
    from edgekit.package.build import BuiltPackage, build_manifest, build_package
    from edgekit.package.predictor import load_predictor, resolve_model_path

# Loaded on first use: building reads the compile record (edgekit.compile, Pillow...),
# which a device that only opens and loads packages (the model agent) never needs; a
# Predictor reads images (Pillow), which the agent never does either.
_LAZY = {
    "BuiltPackage": "edgekit.package.build",
    "build_manifest": "edgekit.package.build",
    "build_package": "edgekit.package.build",
    "load_predictor": "edgekit.package.predictor",
    "resolve_model_path": "edgekit.package.predictor",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "BuiltPackage",
    "FileEntry",
    "KeyPair",
    "Manifest",
    "OpenedPackage",
    "build_manifest",
    "build_package",
    "generate_keypair",
    "key_id",
    "load_model",
    "load_predictor",
    "load_private_key",
    "load_public_key",
    "open_package",
    "resolve_model_path",
    "validate_version",
    "verify_package",
]
