"""Names are refused with a clear message; dimension values are made safe; CMS's limits hold."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langflow_cms.emulator.limits import MAX_DIMENSION_BYTES
from langflow_cms.naming import check_metric_name, clean_dimensions
from langflow_cms.naming import clean_value as clean_dimension_value

MAX_DIMENSIONS = 10
"""Our own policy, not a CMS limit (docs/architecture.md, docs/emulator.md): written here, not imported
from the code it judges."""


@pytest.mark.parametrize("name", ["a", "langflow_flow_duration_ms", "A" + "b" * 63])
def test_valid_metric_names(name):
    assert check_metric_name(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "_x", "a-b", "a b", "a" * 65, "é", None, 3])
def test_invalid_metric_names_raise_a_clear_error(name):
    with pytest.raises(ValueError, match="invalid metric name"):
        check_metric_name(name)


def test_dimension_values_are_sanitised():
    assert clean_dimension_value("a=b&c,d") == "a_b_c_d"
    assert clean_dimension_value("Poem Generator") == "Poem_Generator"
    assert clean_dimension_value("") == "none"
    assert clean_dimension_value(42) == "42"
    # ASCII only: CMS rewrites the rest (cms-api.md §6.1); a name with nothing ASCII gets a stable hash
    assert clean_dimension_value("诗歌") == clean_dimension_value("诗歌") != clean_dimension_value("歌诗")
    assert clean_dimension_value("诗歌").startswith("h") and clean_dimension_value("café 北京") == "caf"
    assert clean_dimension_value("New Flow (1)") == "New_Flow_1"


@given(st.text())
def test_any_value_becomes_a_valid_dimension_value(text):
    value = clean_dimension_value(text)
    assert 1 <= len(value.encode()) <= MAX_DIMENSION_BYTES
    assert not set("=&, ") & set(value)


def test_dimensions_are_sorted_and_common_ones_win():
    dims = clean_dimensions({"z": "1", "a": "2", "instance": "spoofed"}, {"instance": "host-1"})
    assert dims == (("a", "2"), ("instance", "host-1"), ("z", "1"))


def test_too_many_dimensions_and_bad_keys_raise():
    with pytest.raises(ValueError, match="too many dimensions"):
        clean_dimensions({f"k{i}": "v" for i in range(MAX_DIMENSIONS)}, {"instance": "x"})
    with pytest.raises(ValueError, match="invalid dimension key"):
        clean_dimensions({"bad key": "v"})
