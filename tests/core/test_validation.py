"""The shared argument checks: accepted values come back converted, bad ones raise the right
error type with a message naming the argument, the value and the bounds."""

import math

import numpy as np
import pytest
import torch

from medden.core.validation import (
    check_channel_first,
    check_int,
    check_number,
    check_odd_int,
    check_positive,
    check_probability,
    check_range,
    check_size,
)


@pytest.mark.parametrize("value", [3, np.int64(3)])
def test_check_int_returns_a_python_int(value):
    assert check_int(value, "n") == 3 and type(check_int(value, "n")) is int


@pytest.mark.parametrize("value,error,match", [
    (0, ValueError, r"n must be an int >= 1, got 0; use 1\.$"),
    (2.0, TypeError, "n must be an int >= 1, got 2.0 of type float"),
    (True, TypeError, "of type bool"),
])
def test_check_int_refuses(value, error, match):
    with pytest.raises(error, match=match):
        check_int(value, "n", hint="use 1")


def test_check_odd_int_suggests_the_next_odd_size():
    assert check_odd_int(np.int64(7), "window", 3) == 7
    with pytest.raises(ValueError, match=r"^window must be an odd integer >= 3, got 4; use e.g. 5; a hint\.$"):
        check_odd_int(4, "window", 3, hint="a hint")
    with pytest.raises(ValueError, match="window must be an int >= 3, got 1"):
        check_odd_int(1, "window", 3)
    with pytest.raises(TypeError, match="window must be an int"):
        check_odd_int(5.0, "window")


@pytest.mark.parametrize("kwargs,value,expected", [
    ({}, -3, -3.0),
    ({"minimum": 0}, 0, 0.0),
    ({"minimum": 0, "maximum": 1, "open_maximum": True}, np.float32(0.5), 0.5),
    ({"maximum": 2}, 2, 2.0),
])
def test_check_number_accepts_bounds_and_returns_float(kwargs, value, expected):
    result = check_number(value, "x", **kwargs)
    assert result == expected and type(result) is float


@pytest.mark.parametrize("kwargs,value,error,match", [
    ({"minimum": 0}, -1.0, ValueError, r"^x must be a finite number >= 0, got -1.0\.$"),
    ({"minimum": 0, "open_minimum": True}, 0, ValueError, r"x must be a finite number > 0, got 0"),
    ({"minimum": 0, "maximum": 1, "open_minimum": True}, 1.5, ValueError, r"x must be a finite number in \(0, 1\]"),
    ({"minimum": 0, "maximum": 1, "open_maximum": True}, 1.0, ValueError, r"in \[0, 1\), got 1.0"),
    ({"maximum": 1, "open_maximum": True}, 1, ValueError, r"x must be a finite number < 1, got 1"),
    ({}, math.nan, ValueError, "x must be a finite number, got nan"),
    ({"minimum": 0}, math.inf, ValueError, "got inf"),
    ({"minimum": 0, "what": "a step size", "hint": "try 0.1"}, -1, ValueError, r"x must be a step size >= 0, got -1; try 0\.1\.$"),
    ({"minimum": 0}, "1", TypeError, "x must be a number >= 0, got '1' of type str"),
    ({}, True, TypeError, "x must be a number, got True of type bool"),
    ({}, torch.tensor(1.0), TypeError, "of type Tensor"),
])
def test_check_number_refuses(kwargs, value, error, match):
    with pytest.raises(error, match=match):
        check_number(value, "x", **kwargs)


def test_check_positive_and_check_probability_are_check_number_with_fixed_bounds():
    assert check_positive(2, "sigma") == 2.0 and check_probability(1, "p") == 1.0
    with pytest.raises(ValueError, match=r"sigma must be a finite number > 0, got 0; pass the noise level\.$"):
        check_positive(0, "sigma", hint="pass the noise level")
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got nan"):
        check_probability(math.nan, "p")
    with pytest.raises(TypeError, match=r"p must be a number in \[0, 1\]"):
        check_probability(None, "p")


@pytest.mark.parametrize("value", [(64, 32), [64, 32], (np.int64(64), 32)])
def test_check_size_returns_a_tuple_of_ints(value):
    assert check_size(value, "patch_size") == (64, 32)


@pytest.mark.parametrize("value,error,match", [
    (64, TypeError, r"patch_size must be a pair of ints \(height, width\), got 64"),
    ((64, 32, 1), ValueError, r"two positive integers \(height, width\), got \(64, 32, 1\)"),
    ((), ValueError, "two positive integers"),
    ((64.0, 32), TypeError, "pair of ints"),
    ((True, 32), TypeError, "pair of ints"),
    ("ab", TypeError, "pair of ints"),
    ((64, 0), ValueError, r"patch_size must be two positive integers \(height, width\), got \(64, 0\)"),
])
def test_check_size_refuses(value, error, match):
    with pytest.raises(error, match=match):
        check_size(value, "patch_size")


def test_check_range_and_check_channel_first():
    assert check_range(0.5, "r") == (0.5, 0.5)
    assert check_range([0, 1], "r", 0, 1) == (0.0, 1.0)
    with pytest.raises(ValueError, match="swap the two values"):
        check_range((1, 0), "r")
    assert check_channel_first(np.zeros((1, 4, 4)), "img") == 2
    with pytest.raises(ValueError, match=r"img\[None\]"):
        check_channel_first(np.zeros((4, 4)), "img")
