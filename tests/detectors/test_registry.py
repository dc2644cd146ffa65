"""The method registry: names -> seeded detector factories."""

from __future__ import annotations

import pytest

from beth.detectors import registry
from beth.detectors.base import Detector
from beth.errors import UsageError


def test_classical_methods_are_registered_in_table5_order_with_paper_numbers() -> None:
    assert registry.CLASSICAL == ("rcov", "svm", "ifor")
    assert [registry.get(m).paper_auroc for m in registry.CLASSICAL] == [0.519, 0.605, 0.850]
    assert not any(registry.get(m).uses_validation for m in registry.CLASSICAL)


@pytest.mark.parametrize("name", registry.names())
def test_every_entry_makes_a_seeded_unfitted_detector(name: str) -> None:
    det = registry.make(name, 4)
    assert isinstance(det, Detector)
    assert det.get_params()["random_state"] == 4
    assert issubclass(registry.get(name).factory(), Detector)


def test_unknown_method_is_a_one_line_usage_error_listing_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown method 'forest'; known methods: rcov, svm, ifor") as info:
        registry.parse_methods("rcov,forest")
    assert "\n" not in str(info.value)


def test_parse_methods_keeps_order_drops_blanks_and_duplicates() -> None:
    got = registry.parse_methods(" ifor, rcov,,ifor ")
    assert [m.name for m in got] == ["ifor", "rcov"]
    with pytest.raises(UsageError, match="no method given"):
        registry.parse_methods(" , ")


def test_bad_parameters_name_the_method() -> None:
    with pytest.raises(UsageError, match="bad parameters for method 'ifor'"):
        registry.make("ifor", 1, trees=3)
