import math

import pytest

from flops_fit.reporting.formatting import (
    DataUnit,
    format_count,
    format_flops,
    format_interval,
    format_param,
    format_param_interval,
    format_percent,
    format_sig,
)


@pytest.mark.parametrize("value, text", [
    (1.234e9, "1.23B"), (36.2e9, "36.2B"), (999.96e6, "1B"), (412e6, "412M"), (8500, "8.5K"),
    (850, "850"), (4.6e12, "4.6T"), (2e15, "2e15"), (-3e6, "-3M"), (None, "n/a"),
    (math.nan, "n/a"), ("junk", "n/a"),
])
def test_counts_read_like_people_write_them(value, text):
    assert format_count(value) == text


@pytest.mark.parametrize("value, text", [
    (1e24, "1e24"), (3.16e22, "3.2e22"), (4.6e17, "4.6e17"), (2.5e-3, "2.5e-3"), (math.inf, "n/a"),
])
def test_flops_in_scientific_notation(value, text):
    assert format_flops(value) == text


def test_significant_figures_percent_and_intervals():
    assert [format_sig(v) for v in (0.3412, 406.4, 4642.0, 1.0, 0.0)] == [
        "0.341", "406", "4640", "1", "0"]
    assert format_sig(4642.0, 2) == "4600"
    assert format_percent(-0.0536) == "-5.4%"
    assert [format_percent(x) for x in (1.154, 0.0123, -0.51, 0.0)] == [
        "+115%", "+1.2%", "-51%", "0%"]
    assert format_interval([1.2e9, 3.4e9], format_count) == "1.2B – 3.4B"
    assert format_interval([1.0, None]) == "n/a"
    assert format_interval(None) == "n/a"


def test_a_parameter_on_its_bound_is_said_in_words():
    zero = {"side": "lower", "bound": 0.0, "fit": True, "interval": [True, True]}
    assert format_param(1.364e-157, zero) == "≈ 0 (at its bound)"
    assert format_param_interval([1.364e-157, 1.364e-157], zero) == "≈ 0"
    assert format_param_interval([1e-200, 0.05], {**zero, "interval": [True, False]}) == (
        "≈ 0 – 0.05")
    # the saturating law's L_max near its ceiling, with draws on their own (moving) ceilings:
    # the upper end is their bound, not a number just below the fit's
    ceiling = {"side": "upper", "bound": 4911.1, "fit": False, "interval": [False, True]}
    assert format_param(4910.54, ceiling, 4) == "4911"
    assert format_param_interval([8.063, 4898.1], ceiling) == "8.06 – its bound"
    assert format_param(50.0, {**ceiling, "fit": True}) == "50 (at its bound)"
    assert format_param_interval([60.0, 61.0], {**ceiling, "interval": [True, True]}) == (
        "at its bound")
    # nothing on a bound, or nothing to show
    assert format_param(0.3412) == "0.341" and format_param(None, zero) == "n/a"
    assert format_param_interval([0.31, 0.55]) == "0.31 – 0.55"
    assert format_param_interval([None, 0.55], zero) == "n/a"


@pytest.mark.parametrize("unit, plural, singular", [
    ("tokens", "tokens", "token"), ("examples", "examples", "example"),
    (" Examples ", "examples", "example"), ("image", "images", "image"),
    ("batches", "batches", "batch"), ("entries", "entries", "entry"),
    ("series", "series", "series"), (None, "tokens", "token"), (math.nan, "tokens", "token"),
    ("", "tokens", "token"),
])
def test_the_unit_of_d_in_words(unit, plural, singular):
    u = DataUnit.of(unit)
    assert (u.plural, u.singular, u.per) == (plural, singular, f"per {singular}")
    assert u.is_tokens == (plural == "tokens")


def test_the_unit_counts_and_titles():
    assert DataUnit.of().count(3.5e12) == "3.5T tokens"
    assert DataUnit.of("examples").count(350e3) == "350K examples"
    assert DataUnit.of("examples").capitalised == "Examples"
    assert DataUnit.of("examples").to_dict() == {
        "name": "examples", "plural": "examples", "singular": "example",
        "per": "per example", "is_tokens": False}
