"""GB 32100-2015 unified social credit codes: charset and check digit."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.uscc import ALPHABET, InvalidUSCC, check_char, make_uscc, uscc_problem

# Real codes (from the draw protocol's test vector).
VALID = ["91110000600037341L", "913100007416029816", "91350100M000100Y43", "92360202MA3AK9JP2C"]

bodies = st.text(alphabet=ALPHABET, min_size=17, max_size=17)


@pytest.mark.parametrize("code", VALID)
def test_real_codes_are_valid(code):
    assert uscc_problem(code) is None
    assert check_char(code[:17]) == code[17]


def test_wrong_check_digit_names_the_expected_one():
    assert uscc_problem("91110000600037341M") == "check digit is 'M', expected 'L'"


@pytest.mark.parametrize("code, why", [
    ("91110000600037341", "18 characters, got 17"),
    ("91110000600037341LL", "18 characters, got 19"),
    ("9111000060003734IL", "'I'"),  # I, O, S, V, Z are not in the charset
    ("91110000600037341l", "'l'"),  # lower case
])
def test_malformed_codes(code, why):
    assert why in uscc_problem(code)


def test_check_char_refuses_a_bad_body():
    with pytest.raises(InvalidUSCC, match="17 characters"):
        check_char("O" * 17)


@given(bodies)
def test_make_uscc_is_valid(body):
    assert uscc_problem(make_uscc(body)) is None


@given(bodies, st.integers(0, 16), st.sampled_from(ALPHABET))
def test_any_single_substitution_is_caught(body, position, char):
    # Every weight is non-zero modulo the prime 31, so one changed character changes the sum.
    code = make_uscc(body)
    changed = code[:position] + char + code[position + 1:]
    assert (uscc_problem(changed) is None) == (changed == code)
