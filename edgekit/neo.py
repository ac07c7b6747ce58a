"""SageMaker Neo on an account: the AWS wiring of the ``sagemaker-neo`` compile target.

Owns: building the :class:`~edgekit.compile.sagemaker_neo.NeoAccount` the
compiler needs (S3 and SageMaker clients through :mod:`edgekit.clients`, the
execution role and bucket by :func:`edgekit.studio.studio_defaults`' rules,
the bucket made to exist by the backend profile) from edgekit's settings, on
either backend. The compiler itself (in the compile layer) never reaches up
for clients, settings or profiles; callers pass this in::

    compile_model(model, "sagemaker-neo", out,
                  options=CompileOptions(extra={"device": "ml_c5",
                                                "aws": neo_account(settings)}))

Must not import: edgekit.cli or edgekit.local internals.
"""

from __future__ import annotations

from edgekit import clients
from edgekit.compile.sagemaker_neo import NeoAccount, NeoConnect
from edgekit.components.profiles import profile_for
from edgekit.settings import Settings
from edgekit.studio import studio_defaults


def neo_account(settings: Settings | None = None) -> NeoConnect:
    """A ``connect(role_arn=..., bucket=...)`` for ``CompileOptions.extra["aws"]``.

    Nothing is called until the compiler connects (after it has checked the
    device and the model), so a bad ``--device`` fails before any AWS call.
    """
    resolved = settings or Settings.from_env()

    def connect(*, role_arn: str | None = None, bucket: str | None = None) -> NeoAccount:
        defaults = studio_defaults(resolved, role_arn=role_arn, bucket=bucket)
        s3 = clients.client("s3", resolved)
        sagemaker = clients.client("sagemaker", resolved)
        account = str(clients.client("sts", resolved).get_caller_identity()["Account"])
        profile = profile_for(resolved)
        return NeoAccount(
            s3=s3,
            sagemaker=sagemaker,
            role_arn=defaults.role_arn,
            bucket=profile.ensure_bucket(s3, defaults.bucket, account),
            region=resolved.region,
            backend=resolved.backend,
            missing_artifact_hint=profile.neo_missing_artifact_hint,
        )

    return connect
