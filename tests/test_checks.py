"""The one wording of scalar checks: name, what it must be, what it was; bools and NaN never pass."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk.checks import check_int, check_real
from gradwalk.errors import InvalidInput


def test_integers_within_their_bounds_pass_as_ints():
    assert check_int(np.int64(3), "k", low=1) == 3 and type(check_int(np.int64(3), "k")) is int
    assert check_int(0, "offset", low=0) == 0 and check_int(10, "limit", low=1, high=10) == 10


@pytest.mark.parametrize(("value", "message"), [
    (True, r"k must be an integer >= 1, got True"),
    (0, r"k must be an integer >= 1, got 0"),
    (2.0, r"k must be an integer >= 1, got 2.0"),
    ("3", r"k must be an integer >= 1, got '3'"),
])
def test_what_is_not_an_integer_in_range_is_named(value, message):
    with pytest.raises(InvalidInput, match=message):
        check_int(value, "k", low=1)


def test_reals_refuse_nan_inf_bool_and_out_of_range():
    assert check_real(np.float32(0.5), "tau", low=-1.0, high=1.0) == 0.5
    for bad in (float("nan"), float("inf"), True, 1.5, "0.1"):
        with pytest.raises(InvalidInput, match=r"tau must be a finite number in \[-1.0, 1.0\]"):
            check_real(bad, "tau", low=-1.0, high=1.0)
    with pytest.raises(InvalidInput, match=r"limit must be an integer <= 5"):
        check_int(6, "limit", high=5)
