"""The IAM door's own list parsing refuses hostile indices with a 400, never a 500."""

from __future__ import annotations

import pytest

from cargobay.iamapi.context import Params
from cargobay.iamapi.errors import IamError


@pytest.mark.parametrize("index", ["²", "9" * 5000, "0", "x", "-1", "\uff11"])
def test_bad_member_indices_are_validation_errors(index: str) -> None:
    params = Params({f"Tags.member.{index}.Key": "k", f"Tags.member.{index}.Value": "v"})
    with pytest.raises(IamError) as info:
        params.tags()
    assert info.value.code == "ValidationError" and info.value.status == 400


def test_good_indices_in_order() -> None:
    params = Params({"TagKeys.member.2": "b", "TagKeys.member.1": "a"})
    assert params.members("TagKeys") == ["a", "b"]
