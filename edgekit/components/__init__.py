"""The Greengrass components of the quality-inspection app: build and publish.

>>> built = build_components(settings, out_dir="build/components")  # doctest: +SKIP
>>> publish_components(settings, built)  # doctest: +SKIP
{'com.qualityinspection.model': '1.0.3', ...}

Recipe templates live in ``component/<ComponentName>/recipe.yaml``; see
``component/README.md`` for what each component does on the device.
"""

from __future__ import annotations

from edgekit.components.build import BuiltComponent, build_components, default_key_dir
from edgekit.components.publish import (
    PublishedComponent,
    PublishedComponents,
    PublishError,
    next_version,
    publish_components,
)

__all__ = [
    "BuiltComponent",
    "PublishError",
    "PublishedComponent",
    "PublishedComponents",
    "build_components",
    "default_key_dir",
    "next_version",
    "publish_components",
]
