"""Environment variables are read strictly: a value that cannot be read stops
start-up with one sentence naming the variable, the value and what would do."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_decimal, env_float, env_int, env_list, env_str
from tests.factories.files import ROOT

NAME = "STRATA_TEST_ENV_VALUE"


@pytest.fixture
def env(monkeypatch):
    """Set NAME to a value for one reading."""
    monkeypatch.delenv(NAME, raising=False)

    def set_to(value: str) -> None:
        monkeypatch.setenv(NAME, value)

    return set_to


def refusal(call) -> str:
    with pytest.raises(ImproperlyConfigured) as raised:
        call()
    return str(raised.value)


def test_unset_empty_or_blank_takes_the_default(env):
    readers = (
        (env_str, "x"),
        (env_bool, True),
        (env_int, 7),
        (env_float, 0.5),
        (env_list, ["a", "b"]),
    )
    for reader, default in readers:
        assert reader(NAME, default) == default
    for value in ("", "  "):
        env(value)
        for reader, default in readers:
            assert reader(NAME, default) == default
        assert env_decimal(NAME, "12.50") == Decimal("12.50")
        assert env_choice(NAME, "json", ("json", "text")) == "json"


def test_a_float_default_is_a_float():
    assert isinstance(env_float(NAME, 86400), float)


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", "yes", "Yes", "on", "ON", " true "])
def test_a_boolean_reads_true(env, value):
    env(value)
    assert env_bool(NAME, False) is True


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no", "NO", "off", "Off", " 0 "])
def test_a_boolean_reads_false(env, value):
    env(value)
    assert env_bool(NAME, True) is False


@pytest.mark.parametrize("value", ["ture", "2", "enabled", "y", "-1", "truee"])
def test_a_boolean_refuses_anything_else(env, value):
    env(value)
    assert refusal(lambda: env_bool(NAME, False)) == (
        f'{NAME} is "{value}": use one of true, false, 1, 0, yes, no, on, off.'
    )


def test_a_whole_number(env):
    env(" 42 ")
    assert env_int(NAME, 0) == 42
    env("-3")
    assert env_int(NAME, 0) == -3
    for value in ("4.5", "1e3", "32MB", "forty"):
        env(value)
        assert refusal(lambda: env_int(NAME, 0)) == f'{NAME} is "{value}": use a whole number.'


def test_a_whole_number_within_bounds(env):
    env("0")
    assert env_int(NAME, 5, minimum=0) == 0
    env("-1")
    assert refusal(lambda: env_int(NAME, 5, minimum=0)) == (
        f'{NAME} is "-1": use a whole number of at least 0.'
    )
    env("65536")
    assert refusal(lambda: env_int(NAME, 25, minimum=1, maximum=65535)) == (
        f'{NAME} is "65536": use a whole number from 1 to 65535.'
    )
    env("abc")
    assert refusal(lambda: env_int(NAME, 25, minimum=1, maximum=65535)) == (
        f'{NAME} is "abc": use a whole number from 1 to 65535.'
    )


def test_a_number(env):
    env("0.25")
    assert env_float(NAME, 1.0) == 0.25
    env("1e3")
    assert env_float(NAME, 1.0) == 1000.0
    for value in ("nan", "inf", "-inf", "1,5", "fast"):
        env(value)
        assert refusal(lambda: env_float(NAME, 1.0)) == f'{NAME} is "{value}": use a number.'
    env("-0.5")
    assert refusal(lambda: env_float(NAME, 1.0, minimum=0)) == (
        f'{NAME} is "-0.5": use a number of at least 0.'
    )
    env("1.5")
    assert refusal(lambda: env_float(NAME, 0.5, minimum=0, maximum=1)) == (
        f'{NAME} is "1.5": use a number from 0 to 1.'
    )
    env("0.5")
    assert refusal(lambda: env_float(NAME, 1, minimum=0.75)) == (
        f'{NAME} is "0.5": use a number of at least 0.75.'
    )


def test_a_decimal_is_exact(env):
    env("12.10")
    assert env_decimal(NAME, "4", minimum=0) == Decimal("12.10")
    for value in ("12,10", "NaN", "Infinity", "$4"):
        env(value)
        assert refusal(lambda: env_decimal(NAME, "4")) == f'{NAME} is "{value}": use a number.'
    env("-1")
    assert refusal(lambda: env_decimal(NAME, "4", minimum=0)) == (
        f'{NAME} is "-1": use a number of at least 0.'
    )


def test_a_list_is_split_on_commas_and_stripped(env):
    env(" strata.example.org , ,localhost,")
    assert env_list(NAME, []) == ["strata.example.org", "localhost"]


def test_a_string_is_kept_as_given(env):
    env(" s3://bucket/prefix ")
    assert env_str(NAME, "") == " s3://bucket/prefix "


def test_a_choice_in_any_case_comes_back_as_spelled(env):
    env(" Text ")
    assert env_choice(NAME, "json", ("json", "text")) == "text"
    env("info")
    assert env_choice(NAME, "INFO", ("DEBUG", "INFO")) == "INFO"
    env("xml")
    assert refusal(lambda: env_choice(NAME, "json", ("json", "text"))) == (
        f'{NAME} is "xml": use one of json, text.'
    )


def test_a_value_is_quoted_on_one_line(env):
    env('tr"ue\n')
    assert refusal(lambda: env_bool(NAME, False)) == (
        f'{NAME} is "tr\\"ue\\n": use one of true, false, 1, 0, yes, no, on, off.'
    )


def test_settings_read_nothing_from_the_environment_but_through_the_readers():
    source = (ROOT / "config" / "settings.py").read_text()
    assert "os.environ" not in source and "getenv" not in source


def test_a_mistyped_boolean_stops_start_up_with_one_sentence():
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env["STRATA_SECURE_COOKIES"] = "ture"
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=120,
    )
    assert result.returncode != 0
    assert (
        'STRATA_SECURE_COOKIES is "ture": use one of true, false, 1, 0, yes, no, on, off.' in result.stderr
    ), result.stderr
