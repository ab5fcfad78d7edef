"""The shared argument predicates: a bool is no number, NaN and infinities are no finite number, bounds are
inclusive."""

import math

import pytest

from ltx_core.arguments import is_number, is_whole


@pytest.mark.parametrize("value, low, high, expected", [
    (3, None, None, True), (1, 1, 3, True), (3, 1, 3, True), (0, 1, None, False), (4, None, 3, False),
    (True, None, None, False), (False, 0, 1, False), (3.0, None, None, False), ("3", None, None, False),
    (None, None, None, False),
])
def test_is_whole(value, low, high, expected):
    assert is_whole(value, low, high) is expected


@pytest.mark.parametrize("value, low, high, expected", [
    (0.5, 0, 1, True), (0, 0, 1, True), (1, 0, 1, True), (1.01, 0, 1, False), (-0.01, 0, None, False),
    (True, None, None, False), (math.nan, None, None, False), (math.inf, None, None, False),
    (-math.inf, None, 0, False), ("0.5", None, None, False), (None, None, None, False),
])
def test_is_number(value, low, high, expected):
    assert is_number(value, low, high) is expected


def test_is_number_may_allow_non_finite_values_for_callers_that_word_them_apart():
    assert is_number(math.nan, finite=False) and is_number(math.inf, finite=False)
    assert not is_number(True, finite=False)
    assert not is_number(math.inf, 0, 1, finite=False)  # a bound still applies
