"""sc-dispatch-v1: the spec's test vector byte for byte, grammar and properties."""
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.dispatch import (
    PROTOCOL,
    DispatchError,
    PoolInspector,
    dispatch,
    dispatch_seed,
    pool_digest,
    pool_file,
)
from domain.uscc import make_uscc

# --- the spec's vector (draw-protocol.md, section 3) ----------------------------------------------
DRAW_SEED = bytes.fromhex("5d6fc6ed64f213e6cfda10a9385efd683d7a5f496ca44223a0045846e9bcf2de")
UNIT = "360202-SCJ"
AS_OF = date(2025, 4, 1)
SELECTED = ["91350100M000100Y43", "91360200158380283L", "91360202705565720F", "91360203MA38TKN619",
            "92360202MA3AK9JP2C"]
LATER = date(2027, 12, 31)
POOL = [  # deliberately not in id order, qualifications not sorted: pool_file sorts
    PoolInspector("I05", "inactive", LATER, ("registration",), ()),
    PoolInspector("I02", "active", LATER, ("registration", "food"), ("91350100M000100Y43",)),
    PoolInspector("I01", "active", LATER, ("registration",), ()),
    PoolInspector("I04", "active", LATER, ("registration",), ()),
    PoolInspector("I03", "active", date(2025, 1, 31), ("registration",), ()),
]
POOL_FILE = (
    b"I01\tactive\t2027-12-31\tregistration\t\n"
    b"I02\tactive\t2027-12-31\tfood;registration\t91350100M000100Y43\n"
    b"I03\tactive\t2025-01-31\tregistration\t\n"
    b"I04\tactive\t2027-12-31\tregistration\t\n"
    b"I05\tinactive\t2027-12-31\tregistration\t\n"
)
POOL_DIGEST = "f647c3c2235150c12dfb177ee43819420554ce9cd9017c51ae9bf3cb57fddbb0"
SEED2 = "d7b12e36bce372d08907b1304980ca90f24cd222ed3a6b5d46506a409c4c4a86"
ORDER = ["91360202705565720F", "92360202MA3AK9JP2C", "91360203MA38TKN619", "91360200158380283L",
         "91350100M000100Y43"]
TEAMS = {
    "91360202705565720F": ["I04", "I02"],
    "92360202MA3AK9JP2C": ["I02", "I01"],
    "91360203MA38TKN619": ["I01", "I04"],
}
UNSTAFFED = {
    "91360200158380283L": "0 eligible inspectors < team size 2",
    "91350100M000100Y43": "0 eligible inspectors < team size 2",
}


def vector_outcome():
    return dispatch(bytes.fromhex(SEED2), SELECTED, POOL, ["registration"], 2, 2, AS_OF)


def test_vector_pool_file_and_digest():
    assert pool_file(POOL) == POOL_FILE
    assert pool_digest(POOL_FILE) == POOL_DIGEST


def test_vector_seed2():
    assert dispatch_seed(DRAW_SEED, UNIT, POOL_DIGEST, 2, 2).hex() == SEED2


def test_vector_order_teams_and_unstaffed():
    outcome = vector_outcome()
    assert outcome.order == ORDER
    assert outcome.teams == TEAMS
    assert list(outcome.teams) == ORDER[:3]  # staffed in draw order
    assert outcome.unstaffed == UNSTAFFED


def test_protocol_name():
    assert PROTOCOL == "sc-dispatch-v1"


def test_target_order_does_not_depend_on_input_order():
    outcome = dispatch(bytes.fromhex(SEED2), reversed(SELECTED), POOL, ["registration"], 2, 2, AS_OF)
    assert outcome.order == ORDER and outcome.teams == TEAMS


def test_without_load_cap_every_target_is_staffed_and_recusal_holds():
    outcome = dispatch(bytes.fromhex(SEED2), SELECTED, POOL, ["registration"], 2, 0, AS_OF)
    assert set(outcome.teams) == set(SELECTED) and outcome.unstaffed == {}
    assert sorted(outcome.teams["91350100M000100Y43"]) == ["I01", "I04"]  # I02 is recused


def test_missing_qualification_leaves_everyone_unstaffed():
    outcome = dispatch(bytes.fromhex(SEED2), SELECTED, POOL, ["registration", "food"], 2, 0, AS_OF)
    assert outcome.teams == {}
    assert set(outcome.unstaffed.values()) == {"1 eligible inspectors < team size 2",
                                               "0 eligible inspectors < team size 2"}


@pytest.mark.parametrize("size", [0, 1, True, -2])
def test_team_size_below_two_is_refused(size):
    with pytest.raises(DispatchError, match="team_size"):
        dispatch(bytes.fromhex(SEED2), SELECTED, POOL, ["registration"], size, 2, AS_OF)
    with pytest.raises(DispatchError, match="team_size"):
        dispatch_seed(DRAW_SEED, UNIT, POOL_DIGEST, size, 2)


def test_bad_dispatch_inputs_are_refused():
    with pytest.raises(DispatchError, match="load_cap"):
        dispatch_seed(DRAW_SEED, UNIT, POOL_DIGEST, 2, -1)
    with pytest.raises(DispatchError, match="unit_code"):
        dispatch_seed(DRAW_SEED, "市局", POOL_DIGEST, 2, 2)
    with pytest.raises(DispatchError, match="pool_digest"):
        dispatch_seed(DRAW_SEED, UNIT, "f647", 2, 2)
    with pytest.raises(DispatchError, match="as_of"):
        dispatch(bytes.fromhex(SEED2), SELECTED, POOL, ["registration"], 2, 2, datetime(2025, 4, 1))
    with pytest.raises(DispatchError, match="target '91110000600037341M'.*check digit"):
        dispatch(bytes.fromhex(SEED2), ["91110000600037341M"], POOL, [], 2, 2, AS_OF)
    with pytest.raises(DispatchError, match="listed twice"):
        dispatch(bytes.fromhex(SEED2), SELECTED + SELECTED[:1], POOL, [], 2, 2, AS_OF)


@pytest.mark.parametrize("fields, match", [
    (("I 1", "active", LATER, (), ()), "inspector_id 'I 1'"),
    (("I01", "act\tive", LATER, (), ()), "status"),
    (("I01", "active", datetime(2027, 12, 31), (), ()), "cert_expiry"),
    (("I01", "active", "2027-12-31", (), ()), "cert_expiry"),
    (("I01", "active", LATER, ("food;drugs",), ()), "qualification"),
    (("I01", "active", LATER, ("food", "food"), ()), "listed twice"),
    (("I01", "active", LATER, (), ("91110000600037341M",)), "recusal.*check digit"),
])
def test_bad_pool_inspector_is_refused(fields, match):
    with pytest.raises(DispatchError, match=match):
        PoolInspector(*fields)


def test_duplicate_inspector_in_pool_is_refused():
    with pytest.raises(DispatchError, match="'I01' appears twice"):
        pool_file(POOL + [PoolInspector("I01", "active", LATER, (), ())])


def test_empty_pool_leaves_all_unstaffed():
    outcome = dispatch(bytes.fromhex(SEED2), SELECTED, [], [], 2, 0, AS_OF)
    assert outcome.teams == {} and len(outcome.unstaffed) == len(SELECTED)
    assert pool_file([]) == b""


# --- properties -----------------------------------------------------------------------------------
TAGS = ["registration", "food", "drugs"]
targets_strategy = st.lists(st.integers(0, 10**9 - 1).map(lambda n: make_uscc(f"91360202{n:09d}")),
                            max_size=25, unique=True)


@st.composite
def pools(draw, targets):
    size = draw(st.integers(0, 20))
    return [
        PoolInspector(
            f"I{n:02d}",
            draw(st.sampled_from(["active", "active", "active", "inactive"])),
            draw(st.dates(date(2025, 1, 1), date(2026, 12, 31))),
            tuple(draw(st.lists(st.sampled_from(TAGS), unique=True))),
            tuple(draw(st.lists(st.sampled_from(targets), unique=True))) if targets else (),
        )
        for n in range(size)
    ]


@st.composite
def scenarios(draw):
    targets = draw(targets_strategy)
    return (draw(st.binary(min_size=32, max_size=32)), targets, draw(pools(targets)),
            draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=2)),
            draw(st.integers(2, 4)), draw(st.integers(0, 4)))


def replay_loads(outcome, upto):
    load = {}
    for uscc in outcome.order[:upto]:
        for inspector_id in outcome.teams.get(uscc, []):
            load[inspector_id] = load.get(inspector_id, 0) + 1
    return load


def eligible_at(outcome, position, pool, required, load_cap):
    uscc = outcome.order[position]
    load = replay_loads(outcome, position)
    return [i.inspector_id for i in pool
            if i.status == "active" and i.cert_expiry >= AS_OF and set(required) <= set(i.qualifications)
            and uscc not in i.recusal and (load_cap == 0 or load.get(i.inspector_id, 0) < load_cap)]


@given(scenarios())
def test_dispatch_properties(scenario):
    seed2, targets, pool, required, team_size, load_cap = scenario
    outcome = dispatch(seed2, targets, pool, required, team_size, load_cap, AS_OF)
    by_id = {inspector.inspector_id: inspector for inspector in pool}
    assert sorted(outcome.order) == sorted(targets)
    assert set(outcome.teams).isdisjoint(outcome.unstaffed)
    assert set(outcome.teams) | set(outcome.unstaffed) == set(targets)
    for position, uscc in enumerate(outcome.order):
        eligible = eligible_at(outcome, position, pool, required, load_cap)
        if uscc in outcome.unstaffed:
            assert len(eligible) < team_size
            assert outcome.unstaffed[uscc] == f"{len(eligible)} eligible inspectors < team size {team_size}"
            continue
        team = outcome.teams[uscc]
        assert len(team) == team_size >= 2 and len(set(team)) == team_size
        assert set(team) <= set(eligible)
        for inspector_id in team:  # recusal never violated, whatever the load and ranking
            assert uscc not in by_id[inspector_id].recusal
    if load_cap:
        assert all(load <= load_cap for load in replay_loads(outcome, len(outcome.order)).values())


@given(scenarios())
def test_dispatch_is_deterministic(scenario):
    seed2, targets, pool, required, team_size, load_cap = scenario
    first = dispatch(seed2, targets, pool, required, team_size, load_cap, AS_OF)
    again = dispatch(seed2, list(reversed(targets)), list(reversed(pool)), required, team_size, load_cap, AS_OF)
    assert first == again
