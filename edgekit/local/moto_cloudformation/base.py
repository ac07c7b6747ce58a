"""What every edgekit handler that extends one of moto's own handlers shares."""

from __future__ import annotations

from typing import Any, ClassVar

# moto's CloudFormation engine imports every moto model that has a handler; importing it
# first means each edgekit handler below is defined after moto's handler for its type.
from moto.cloudformation import parsing  # noqa: F401


class ExtendsMotoModel:
    """What a handler that extends moto's own handler for a type takes from it unchanged.

    The name property and the ``GetAtt`` attributes are moto's, and the resource objects
    are moto's too. List it *before* ``CloudFormationModel`` in the bases: moto only looks
    at direct subclasses of ``CloudFormationModel``.
    """

    moto_model: ClassVar[Any]
    resource_type: ClassVar[str]

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.moto_model.cloudformation_name_type()

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.resource_type

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return cls.moto_model.has_cfn_attr(attr)

    def is_created(self) -> bool:
        return True
