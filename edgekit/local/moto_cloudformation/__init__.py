"""CloudFormation support moto lacks, so the device stack deploys on the local backend.

moto's CloudFormation engine creates resources by calling its own service backends, one
handler class per resource type. For the Greengrass device template, moto 5.2 falls
short in these places, and this module fills each gap the way CloudFormation does on
AWS: by calling the same service APIs (moto's IoT, S3, EC2 and IAM backends), so that
``describe_thing_group``, ``get_bucket_policy``, ``describe_instances``... then show
what the template asked for.

Resource handlers:

- ``AWS::IoT::ThingGroup``, ``AWS::S3::BucketPolicy``: no handler (moto skipped them
  with a warning and a ``GetAtt`` on them failed the stack).
- ``AWS::EC2::Instance``: ``SecurityGroupIds`` and ``MetadataOptions`` were dropped.
- ``AWS::S3::Bucket``: ``VersioningConfiguration``, ``PublicAccessBlockConfiguration``
  and ``OwnershipControls`` were dropped.
- ``AWS::IAM::Role``: ``ManagedPolicyArns`` were dropped; AWS managed policies are
  loaded from moto's bundled copy when moto started without
  ``MOTO_IAM_LOAD_MANAGED_POLICIES``.
- ``AWS::IAM::ManagedPolicy``: never detached nor deleted, so deleting a stack whose
  role had one attached failed with ``DeleteConflict``.
- ``AWS::IoT::Policy``: the document was stored as Python text instead of JSON; deletion
  read the name from the unresolved template; non-default versions blocked deletion.
- ``AWS::IoT::RoleAlias``: ``Ref`` returned a Python repr instead of the alias name.

Engine fixes:

- an update that changes only a parameter used as ``${Name}`` in ``Fn::Sub`` left the
  resources using it unchanged (moto followed only ``Ref``);
- a stack created or updated through a change set kept the outputs of its previous
  template (none, for a new stack).

And one S3 evaluation fix: a bucket policy statement with a ``Condition`` made moto's S3
refuse every object request. moto's S3 supplies no condition keys (it does not model
``aws:SecureTransport``), and on AWS a condition on a key the request lacks does not
match, so such a statement does not apply here. The template's deny-unless-TLS policy
is stored and returned by ``GetBucketPolicy`` unchanged, but not enforced on the local
plain-HTTP endpoint.

Call :func:`install` in the process that runs moto, before its first stack operation.

Owns: one module per AWS service (``iot``, ``s3``, ``ec2``, ``iam``) with that service's
handlers and patches, ``engine`` for fixes to the engine itself, ``base`` for what the
handlers share. Imports moto at the top of every module: only the moto server process
(``edgekit.local.moto_server``) and tests import this package. Must not import any other
edgekit module but ``errors``.
"""

from __future__ import annotations

import threading

from moto.cloudformation import parsing

from edgekit.errors import LocalBackendError
from edgekit.local.moto_cloudformation import ec2, engine, iam, iot, s3

# Every handler; moto maps a type to the *last* direct CloudFormationModel subclass
# naming it, and ours are defined after moto's (see ``base``).
HANDLERS: tuple[type, ...] = (
    iot.ThingGroupResource,
    s3.BucketPolicyResource,
    ec2.InstanceResource,
    s3.BucketResource,
    iot.IoTPolicyResource,
    iam.RoleResource,
    iam.ManagedPolicyResource,
)

_installed = False
_lock = threading.Lock()


def install() -> None:
    """Make moto's CloudFormation engine use the handlers, and apply the fixes (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        iot.name_iot_resources()
        s3.bucket_policy_conditions()
        engine.resolve_outputs_after_change_sets()
        engine.parameters_referenced_by_sub()
        # The cached maps may predate the handlers: rebuild them.
        parsing.get_model_list.cache_clear()
        parsing.get_model_map.cache_clear()
        parsing.get_name_type_map.cache_clear()
        model_map = parsing.get_model_map()
        for cls in HANDLERS:
            if model_map.get(cls.cloudformation_type()) is not cls:  # pragma: no cover
                raise LocalBackendError(
                    f"moto did not take edgekit's handler for {cls.cloudformation_type()}; "
                    "this moto version is not supported: install the moto version "
                    "pyproject.toml names"
                )
        _installed = True


__all__ = ["HANDLERS", "install"]
