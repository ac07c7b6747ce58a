"""The main job's steps as functions: find what an earlier step left behind, or make it.

Every notebook runs alone. These functions hold the few decisions the notebooks would
otherwise repeat in cells: which device stack (`devices`), which model package and
registry version (`model`), whether the inference app is deployed, and notebook 03 in
one call for notebook 04 when it is not (`deployment`), where the images behind the
results are and whether any result arrived (`results`), and what each notebook's
parameters cell declares, with the check of the names a scheduled run is given (`params`).
The notebooks still make the edgekit calls themselves, so a reader sees them.

Also owns deploy on approval: the state machine's definition built from the recipe
templates (`approval_definition`, `approval_recipe`, `approval_states`) and its second
stack, started by hand and followed from its execution history (`approval`); import
them from their modules (`edgekit.workflow.approval`).

Owns: those find-or-make decisions. Sits at the top of the library: it may use
`provision`, `registry`, `components`, `deploy`, `stack`, `results` and `handover`; nothing in
edgekit imports it but the notebooks and `pipeline` (for `params`). Must not import
`edgekit.cli`, `edgekit.viz` or the local emulators' internals.
"""

from __future__ import annotations

from edgekit.workflow.deployment import Deployed, deploy_latest_approved, find_deployment
from edgekit.workflow.devices import DEFAULT_DEVICE_COUNT, Devices, ensure_devices, stack_name_for
from edgekit.workflow.model import (
    VERSION_COLUMNS,
    PackageRef,
    Registration,
    ensure_registered,
    find_model_package,
    find_registered,
    version_rows,
)
from edgekit.workflow.results import (
    SAMPLE_IMAGES_FOLDER,
    check_results,
    device_image_dir,
    find_image_dir,
    regenerate_sample_images,
    summary_rows,
)

__all__ = [
    "DEFAULT_DEVICE_COUNT",
    "SAMPLE_IMAGES_FOLDER",
    "VERSION_COLUMNS",
    "Deployed",
    "Devices",
    "PackageRef",
    "Registration",
    "check_results",
    "deploy_latest_approved",
    "device_image_dir",
    "ensure_devices",
    "ensure_registered",
    "find_deployment",
    "find_image_dir",
    "find_model_package",
    "find_registered",
    "regenerate_sample_images",
    "stack_name_for",
    "summary_rows",
    "version_rows",
]
