"""The Greengrass components of the quality-inspection app: build and publish.

>>> built = build_components(settings, out_dir="build/components")  # doctest: +SKIP
>>> publish_components(settings, built)  # doctest: +SKIP
{'com.qualityinspection.model': '1.0.3', ...}

Recipe templates live in ``component/<ComponentName>/recipe.yaml``; see
``component/README.md`` for what each component does on the device.

Owns: ``templates`` (the recipe templates), ``artifacts`` (wheel, sample images),
``build`` (artifacts and recipes on disk, no network), ``profiles`` (what differs per
backend when publishing), ``publish`` (upload, version, CreateComponentVersion) and
``gdk`` (one component built as a Greengrass Development Kit project, for ``gdk component
build``; see docs/gdk.md).
Must not import ``deploy``, ``provision``, ``registry``, ``compile`` or ``workflow``:
they use components, not the other way round.
"""

from __future__ import annotations

from edgekit.components.build import (
    BuiltComponent,
    build_components,
    default_key_dir,
    generated_configuration,
)
from edgekit.components.publish import (
    PublishedComponent,
    PublishedComponents,
    next_version,
    publish_components,
)
from edgekit.errors import PublishError

__all__ = [
    "BuiltComponent",
    "PublishError",
    "PublishedComponent",
    "PublishedComponents",
    "build_components",
    "default_key_dir",
    "generated_configuration",
    "next_version",
    "publish_components",
]
