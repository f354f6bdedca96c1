"""``DatasetSpec`` as plain data: what checkpoints hold, read back as the same object."""

from __future__ import annotations

import json

import pytest

from asc_kd.data.spec import DatasetError, DatasetSpec
from asc_kd.data.tau import TAU20, TAU22


@pytest.mark.parametrize(
    "spec", [TAU22, TAU20, DatasetSpec("folders", ("a", "b"), mono=False)], ids=["tau22", "tau20", "folders"]
)
def test_as_dict_is_plain_data_that_reads_back_to_the_same_spec(spec: DatasetSpec) -> None:
    plain = spec.as_dict()
    assert json.loads(json.dumps(plain)) == plain  # lists, dicts, numbers, strings only
    assert DatasetSpec.from_dict(plain) == spec
    assert DatasetSpec.from_dict(json.loads(json.dumps(plain))) == spec  # lists become tuples again


def test_missing_fields_take_their_defaults_and_unknown_ones_are_named() -> None:
    spec = DatasetSpec.from_dict({"name": "old", "classes": ["x", "y"], "devices": ["d"]})
    assert spec == DatasetSpec("old", ("x", "y"), ("d",))
    with pytest.raises(
        DatasetError, match=r"^dataset spec 'old': unknown field\(s\) \['colour'\]; known: name, "
    ):
        DatasetSpec.from_dict({"name": "old", "classes": ["x"], "colour": "red"})
