"""sc-draw-v1: the spec's test vector byte for byte, edge cases and properties."""
import hashlib
import math
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.draw import (
    PROTOCOL,
    DrawError,
    PopulationDigest,
    StratumPlan,
    commitment,
    draw_key,
    draw_seed,
    parse_ratio,
    plan_strata,
    quota,
    select,
    selection_digest,
    validate_entropy,
    validate_stratum,
    validate_task_id,
)
from domain.uscc import ALPHABET, make_uscc

# --- the spec's vector (draw-protocol.md, section 3) ----------------------------------------------
TASK_ID = "JDZ-2025-0001"
SALT = bytes(range(0x00, 0x20))
NONCE = bytes(range(0x20, 0x40))
ENTROPY = "3D-2025091"
RATIOS = {"A": "0.5", "B": "0.5", "C": "1", "D": "0.07"}
POPULATION = [
    ("91110000600037341L", "A"),
    ("913100007416029816", "B"),
    ("91350100M000100Y43", "A"),
    ("91360200158380283L", "A"),
    ("91360202705565720F", "B"),
    ("91360202MA35GTX11T", "A"),
    ("91360203MA38TKN619", "C"),
    ("92360202MA3AK9JP2C", "D"),
]
DIGEST = "9ead95a77f8b74f3c5fd1c0efed6df5ec9c0af2312f4433fa8c4146558d728f4"
COMMITMENT = "72dbb7336c76780023f83da4c355f2eeea85733b13d3477697917790c1229084"
SEED = "5d6fc6ed64f213e6cfda10a9385efd683d7a5f496ca44223a0045846e9bcf2de"
PLANS = {
    "A": StratumPlan(4, "0.5", 2),
    "B": StratumPlan(2, "0.5", 1),
    "C": StratumPlan(1, "1", 1),
    "D": StratumPlan(1, "0.07", 1),
}
KEYS = {
    "91110000600037341L": "b3104f66ffc5335b6cae142574798df4f91ac7b73c9d4bafc5bbd93435953ad1",
    "913100007416029816": "665b075373e052fb71a5bb9d45a634c0da8533764c3cfa4cf6ede9edfb4365d6",
    "91350100M000100Y43": "2477a67d3811840b41374895a05fa0113d8d3cc637c26eb3442c330b064137b7",
    "91360200158380283L": "9597bb0e3f9f6f7272897de3f73403b795c70683c4bf1cdf910c4a8522e616c0",
    "91360202705565720F": "4299a0f40dbbafabe7379d73f658899febad41fd65d153647e484b1e28aa277f",
    "91360202MA35GTX11T": "c67f2b24bfccf9352005488ff3d56e1a4d62f8256e3656c90fac310563264598",
    "91360203MA38TKN619": "00be95a2e7fc2165f5b2b76bf28453798a8e9ba42c34f4233f66b2b98e1acdd2",
    "92360202MA3AK9JP2C": "cc4eeb25a559b128393b07921043863dc9e619a7483fc08c9e2b376ceaa3bce0",
}
SELECTED = ["91350100M000100Y43", "91360200158380283L", "91360202705565720F", "91360203MA38TKN619",
            "92360202MA3AK9JP2C"]
SELECTION_DIGEST = "f34c804a073a48d4ca7f9282fa0062e8735ace45dd7c6223e83bea4fda357963"


def digest_of(rows, salt=SALT):
    digest = PopulationDigest(salt)
    for uscc, stratum in rows:
        digest.add(uscc, stratum)
    return digest


def quotas_of(plans):
    return {stratum: plan.quota for stratum, plan in plans.items()}


def test_vector_population_digest_and_counts():
    digest = digest_of(POPULATION)
    assert digest.hexdigest() == DIGEST
    assert digest.counts == {"A": 4, "B": 2, "C": 1, "D": 1}


def test_vector_commitment():
    assert commitment(NONCE) == COMMITMENT


def test_vector_seed():
    assert draw_seed(TASK_ID, DIGEST, NONCE, ENTROPY).hex() == SEED


def test_vector_quotas():
    assert plan_strata({"A": 4, "B": 2, "C": 1, "D": 1}, RATIOS) == PLANS


@pytest.mark.parametrize("uscc, key", KEYS.items())
def test_vector_keys(uscc, key):
    assert draw_key(bytes.fromhex(SEED), uscc).hex() == key


def test_vector_selection_and_digest():
    selected = select(bytes.fromhex(SEED), POPULATION, quotas_of(PLANS))
    assert selected == SELECTED
    assert selection_digest(selected) == SELECTION_DIGEST


def test_protocol_name():
    assert PROTOCOL == "sc-draw-v1"


# --- strata and quotas ----------------------------------------------------------------------------
def test_empty_stratum_with_a_ratio_is_listed_with_quota_zero():
    plans = plan_strata({"A": 4, "B": 2, "C": 1, "D": 1, "U": 0}, {**RATIOS, "U": "0.05"})
    assert plans["U"] == StratumPlan(0, "0.05", 0)
    selected = select(bytes.fromhex(SEED), POPULATION, quotas_of(plans))
    assert selected == SELECTED


def test_counted_empty_stratum_without_ratio_is_left_out():
    assert "E" not in plan_strata({"A": 4, "E": 0}, {"A": "0.5"})


def test_ratio_of_an_absent_stratum_is_not_listed_but_is_validated():
    assert set(plan_strata({"A": 4}, {"A": "0.5", "D": "0.2"})) == {"A"}
    with pytest.raises(DrawError, match="'0.2x'"):
        plan_strata({"A": 4}, {"A": "0.5", "D": "0.2x"})


def test_missing_ratio_for_a_present_stratum_names_it():
    with pytest.raises(DrawError, match="stratum 'U' has 3 entities but no ratio"):
        plan_strata({"A": 4, "U": 3}, {"A": "0.5"})


def test_quota_equal_to_size_selects_the_whole_stratum():
    rows = [row for row in POPULATION if row[1] == "A"]
    plans = plan_strata({"A": 4}, {"A": "1.000000"})
    assert plans["A"].quota == 4
    assert select(bytes.fromhex(SEED), rows, quotas_of(plans)) == [uscc for uscc, _ in rows]


def test_ratio_zero_draws_nobody_from_the_stratum():
    plans = plan_strata({"A": 4, "B": 2, "C": 1, "D": 1}, {**RATIOS, "A": "0"})
    assert plans["A"].quota == 0
    selected = select(bytes.fromhex(SEED), POPULATION, quotas_of(plans))
    assert not {uscc for uscc, stratum in POPULATION if stratum == "A"} & set(selected)
    assert len(selected) == 3


def test_quota_is_exact_for_0_07_of_100():
    assert quota(100, parse_ratio("0.07")) == 7  # a float would give ceil(7.000000000000001) = 8


@pytest.mark.parametrize("text", ["0", "0.5", "0.07", "0.000001", "1", "1.0", "1.000000", "0.999999"])
def test_good_ratios(text):
    assert parse_ratio(text) == Fraction(text)


@pytest.mark.parametrize("text", [
    "1.1", "1.01", "0.1234567", ".5", "0.", "00.5", "01", "2", "-0", "+0.5", "0,5", "5%", "1e-2",
    " 0.5", "0.5 ", "0.5\n", "", "0x1", "１",
])
def test_bad_ratio_strings_are_refused_naming_the_value(text):
    with pytest.raises(DrawError, match=r"ratio .*must be a string"):
        parse_ratio(text)


@pytest.mark.parametrize("value", [0.5, 1, Fraction(1, 2), None])
def test_ratio_must_be_a_string(value):
    with pytest.raises(DrawError):
        parse_ratio(value)


@pytest.mark.parametrize("population, ratio", [(-1, Fraction(1, 2)), (True, Fraction(1, 2)), (3, Fraction(3, 2)),
                                               (3, 0.5)])
def test_quota_refuses_bad_arguments(population, ratio):
    with pytest.raises(DrawError):
        quota(population, ratio)


ratio_texts = st.one_of(
    st.just("0"), st.just("1"),
    st.text(alphabet="0123456789", min_size=1, max_size=6).map(lambda decimals: "0." + decimals),
    st.integers(1, 6).map(lambda n: "1." + "0" * n),
)


@given(st.integers(0, 10**7), ratio_texts)
def test_quota_is_min_of_size_and_exact_ceiling(population, text):
    ratio = parse_ratio(text)
    q = quota(population, ratio)
    assert q == min(population, math.ceil(Fraction(population) * Fraction(text)))
    assert 0 <= q <= population
    assert q >= population * ratio  # never fewer than the ratio asks
    assert q == 0 or q - 1 < population * ratio  # and not one more than needed


# --- population digest ----------------------------------------------------------------------------
def test_out_of_order_population_is_refused():
    rows = [POPULATION[1], POPULATION[0]]
    with pytest.raises(DrawError, match="91110000600037341L comes before 913100007416029816"):
        digest_of(rows)


def test_duplicate_row_is_refused():
    with pytest.raises(DrawError, match="repeats"):
        digest_of([POPULATION[0], POPULATION[0]])


def test_wrong_check_digit_is_refused():
    with pytest.raises(DrawError, match=r"'91110000600037341M'.*check digit is 'M', expected 'L'"):
        digest_of([("91110000600037341M", "A")])


@pytest.mark.parametrize("uscc", ["91110000600037341", "9111000060003734IL", "91110000600037341l", None])
def test_malformed_uscc_is_refused(uscc):
    with pytest.raises(DrawError, match="USCC"):
        digest_of([(uscc, "A")])


@pytest.mark.parametrize("stratum", ["a", "", "A\t", "ABCDEFGHIJKLMNOPQ", "Ä"])
def test_bad_stratum_is_refused(stratum):
    with pytest.raises(DrawError, match="stratum"):
        digest_of([(POPULATION[0][0], stratum)])


def test_digest_depends_on_the_salt():
    assert digest_of(POPULATION, bytes(32)).hexdigest() != DIGEST


def test_salt_must_be_32_bytes():
    with pytest.raises(DrawError, match="salt"):
        PopulationDigest(b"short")


def test_empty_population_digest_is_the_salt_hash():
    assert digest_of([]).hexdigest() == hashlib.sha256(SALT).hexdigest()


# --- seed inputs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("task_id", ["", "a" * 65, "景市监抽查〔2025〕1号", "JDZ 2025", "JDZ\n"])
def test_bad_task_id(task_id):
    with pytest.raises(DrawError, match="task_id"):
        validate_task_id(task_id)


def test_entropy_grammar():
    assert validate_entropy("") == ""
    assert validate_entropy("~" * 256) == "~" * 256
    for bad in ("a\nb", "~" * 257, "中", "\t"):
        with pytest.raises(DrawError, match="entropy"):
            validate_entropy(bad)


def test_stratum_grammar():
    assert validate_stratum("U") == "U"
    assert validate_stratum("Key_risk-2") == "Key_risk-2"


def test_seed_refuses_bad_nonce_and_digest():
    with pytest.raises(DrawError, match="nonce"):
        draw_seed(TASK_ID, DIGEST, NONCE[:31], ENTROPY)
    with pytest.raises(DrawError, match="population_digest"):
        draw_seed(TASK_ID, DIGEST.upper(), NONCE, ENTROPY)
    with pytest.raises(DrawError, match="nonce"):
        commitment(NONCE.hex().encode())


# --- selection errors -----------------------------------------------------------------------------
def test_stratum_without_quota_is_refused():
    with pytest.raises(DrawError, match="stratum 'D', which has no quota"):
        select(bytes.fromhex(SEED), POPULATION, {"A": 2, "B": 1, "C": 1})


def test_quota_above_population_is_refused():
    with pytest.raises(DrawError, match="quota 5 exceeds its population 4"):
        select(bytes.fromhex(SEED), POPULATION, {"A": 5, "B": 1, "C": 1, "D": 1})


def test_duplicate_entity_in_selection_is_refused():
    with pytest.raises(DrawError, match="twice"):
        select(bytes.fromhex(SEED), POPULATION + [POPULATION[0]], {"A": 5, "B": 2, "C": 1, "D": 1})


def test_selection_digest_needs_ascending_order():
    with pytest.raises(DrawError, match="ascending"):
        selection_digest(list(reversed(SELECTED)))


def test_empty_selection_digest():
    assert selection_digest([]) == hashlib.sha256(b"").hexdigest()


# --- properties -----------------------------------------------------------------------------------
bodies = st.text(alphabet=ALPHABET, min_size=17, max_size=17)
strata_names = st.sampled_from(["A", "B", "C", "D", "U"])
populations = st.dictionaries(bodies.map(make_uscc), strata_names, max_size=60).map(lambda d: sorted(d.items()))
ratio_maps = st.fixed_dictionaries({s: ratio_texts for s in "ABCDU"})
seeds = st.binary(min_size=32, max_size=32)


def counts_of(rows):
    counts = {}
    for _, stratum in rows:
        counts[stratum] = counts.get(stratum, 0) + 1
    return counts


@given(seeds, populations, ratio_maps)
def test_selection_is_the_smallest_keys_of_each_stratum(seed, rows, ratios):
    plans = plan_strata(counts_of(rows), ratios)
    selected = select(seed, rows, quotas_of(plans))
    assert selected == sorted(set(selected))
    strata = dict(rows)
    for stratum, plan in plans.items():
        members = [uscc for uscc, s in rows if s == stratum]
        chosen = [uscc for uscc in selected if strata[uscc] == stratum]
        assert len(chosen) == plan.quota
        brute_force = sorted(members, key=lambda uscc: (draw_key(seed, uscc), uscc))[:plan.quota]
        assert chosen == sorted(brute_force)


@given(seeds, populations, ratio_maps)
def test_selection_is_deterministic_and_order_independent(seed, rows, ratios):
    quotas = quotas_of(plan_strata(counts_of(rows), ratios))
    assert select(seed, rows, quotas) == select(seed, list(reversed(rows)), quotas)


def large_population(size=400):
    return [(make_uscc(f"9136020{n:010d}"), "ABCDU"[n % 5]) for n in range(size)]


LARGE = large_population()
LARGE_DIGEST = digest_of(LARGE).hexdigest()
LARGE_QUOTAS = quotas_of(plan_strata(counts_of(LARGE), dict.fromkeys("ABCDU", "0.1")))


def large_selection(nonce, entropy):
    return select(draw_seed(TASK_ID, LARGE_DIGEST, nonce, entropy), LARGE, LARGE_QUOTAS)


@settings(max_examples=25)
@given(seeds, seeds)
def test_a_different_nonce_gives_a_different_selection(nonce, other):
    assume(nonce != other)
    assert large_selection(nonce, ENTROPY) != large_selection(other, ENTROPY)


entropies = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@settings(max_examples=25)
@given(entropies, entropies)
def test_a_different_entropy_gives_a_different_selection(entropy, other):
    assume(entropy != other)
    assert large_selection(NONCE, entropy) != large_selection(NONCE, other)
