"""The independent verifier against packages built with domain.draw / domain.dispatch."""
import copy
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.verify import PackageError, read_population_csv, verify_dispatch, verify_draw
from domain import dispatch as dispatch_protocol
from domain import draw
from domain.uscc import ALPHABET, make_uscc

SALT = bytes(range(0x00, 0x20))
NONCE = bytes(range(0x20, 0x40))
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


def build_package(rows, ratios, *, salt=SALT, nonce=NONCE, entropy="3D-2025091", source="福利彩票3D 2025091",
                  task_id="JDZ-2025-0001", targeted=()):
    """An audit package as `spotcheck draw export` writes it, computed with domain.draw."""
    digest = draw.PopulationDigest(salt)
    for uscc, stratum in rows:
        digest.add(uscc, stratum)
    plans = draw.plan_strata(digest.counts, ratios)
    seed = draw.draw_seed(task_id, digest.hexdigest(), nonce, entropy)
    selected = draw.select(seed, rows, {s: p.quota for s, p in plans.items()})
    return {
        "protocol": draw.PROTOCOL, "task_id": task_id, "task_code": "景市监抽查〔2025〕1号", "draw_seq": 1,
        "supersedes": None, "reason": None, "approver": None, "frozen_at": "2025-03-20T09:00:00+08:00",
        "population_digest": digest.hexdigest(),
        "strata": {s: {"population": p.population, "ratio": p.ratio, "quota": p.quota} for s, p in plans.items()},
        "exclusions": {"deregistered": 3}, "commitment": draw.commitment(nonce),
        "entropy_source": source, "entropy": entropy, "nonce": nonce.hex(), "seed": seed.hex(),
        "selection_digest": draw.selection_digest(selected),
        "population_salt": salt.hex(), "selected": selected,
        "targeted": [{"uscc": uscc, "reason": "complaint"} for uscc in targeted],
    }


def check(report, name):
    (found,) = [c for c in report.checks if c.name == name]
    return found


def failed(report):
    return {c.name for c in report.checks if not c.ok}


def test_vector_package_verifies():
    record = build_package(POPULATION, RATIOS, targeted=["91110000600037341L"])
    report = verify_draw(record, POPULATION)
    assert report.ok, str(report)
    assert {c.name for c in report.checks} >= {
        "protocol", "record", "commitment", "entropy", "seed", "population rows", "population_digest",
        "strata", "quotas", "selection", "selection_digest", "targeted"}
    assert record["seed"] == "5d6fc6ed64f213e6cfda10a9385efd683d7a5f496ca44223a0045846e9bcf2de"


def test_unknown_keys_are_ignored():
    record = build_package(POPULATION, RATIOS)
    record["published_at"] = "2025-03-21"
    assert verify_draw(record, POPULATION).ok


def test_no_external_entropy_is_said():
    record = build_package(POPULATION, RATIOS, entropy="", source="none")
    report = verify_draw(record, POPULATION)
    assert report.ok
    assert "no external entropy" in check(report, "entropy").detail


def test_source_none_with_an_entropy_value_fails():
    record = build_package(POPULATION, RATIOS, source="none")
    assert failed(verify_draw(record, POPULATION)) == {"entropy"}


@pytest.mark.parametrize("key, value, failing", [
    ("seed", "00" * 32, {"seed"}),
    ("commitment", "11" * 32, {"commitment"}),
    ("nonce", "22" * 32, {"commitment", "seed", "selection", "selection_digest"}),
    ("entropy", "3D-2025092", {"seed", "selection", "selection_digest"}),
    ("task_id", "JDZ-2025-0002", {"seed", "selection", "selection_digest"}),
    ("selection_digest", "33" * 32, {"selection_digest"}),
    ("population_salt", "44" * 32, {"population_digest"}),
    ("protocol", "sc-draw-v2", {"protocol"}),
])
def test_tampered_record_field_fails_naming_it(key, value, failing):
    record = build_package(POPULATION, RATIOS)
    original = record[key]
    record[key] = value
    report = verify_draw(record, POPULATION)
    assert failed(report) == failing
    if key in failing and key != "protocol":
        assert check(report, key).detail.startswith(f"record says {value}, recomputed ")
    assert not report.ok and original != value


def test_tampered_salt_names_both_digests():
    record = build_package(POPULATION, RATIOS)
    record["population_salt"] = "44" * 32
    detail = check(verify_draw(record, POPULATION), "population_digest").detail
    assert detail.startswith(f"record says {record['population_digest']}, recomputed ")


def test_tampered_selection_names_the_entities():
    record = build_package(POPULATION, RATIOS)
    record["selected"] = sorted(set(record["selected"]) - {"91360200158380283L"} | {"91110000600037341L"})
    report = verify_draw(record, POPULATION)
    detail = check(report, "selection").detail
    assert "record selects 91110000600037341L" in detail
    assert "recomputation selects 91360200158380283L" in detail
    assert failed(report) == {"selection"}  # the digest is recomputed from the recomputed selection


def test_unsorted_selection_fails():
    record = build_package(POPULATION, RATIOS)
    record["selected"] = list(reversed(record["selected"]))
    assert "ascending" in check(verify_draw(record, POPULATION), "selection").detail


def test_tampered_quota_fails():
    record = build_package(POPULATION, RATIOS)
    record["strata"]["A"]["quota"] = 1
    report = verify_draw(record, POPULATION)
    assert failed(report) == {"quotas"}
    assert "A: record says quota 1, recomputed 2" in check(report, "quotas").detail


def test_tampered_ratio_fails():
    record = build_package(POPULATION, RATIOS)
    record["strata"]["A"]["ratio"] = "0.25"
    assert "quotas" in failed(verify_draw(record, POPULATION))


def test_tampered_population_row_stratum():
    record = build_package(POPULATION, RATIOS)
    rows = list(POPULATION)
    rows[0] = ("91110000600037341L", "B")
    report = verify_draw(record, rows)
    assert {"population_digest", "strata"} <= failed(report)
    assert "A: record says population 4, recomputed 3" in check(report, "strata").detail


def test_removed_population_row():
    record = build_package(POPULATION, RATIOS)
    report = verify_draw(record, [row for row in POPULATION if row[1] != "C"])
    assert {"population_digest", "strata", "quotas", "selection"} <= failed(report)
    assert "C: record says quota 1, recomputed 0" in check(report, "quotas").detail


def test_out_of_order_row_is_reported_with_its_number():
    record = build_package(POPULATION, RATIOS)
    rows = [POPULATION[1], POPULATION[0]] + POPULATION[2:]
    detail = check(verify_draw(record, rows), "population rows").detail
    assert "row 2 ('91110000600037341L', 'A'): not after the previous row '913100007416029816'" in detail


def test_wrong_check_digit_row_is_reported():
    record = build_package(POPULATION, RATIOS)
    rows = [("91110000600037341M", "A")] + POPULATION[1:]
    report = verify_draw(record, rows)
    assert "row 1 ('91110000600037341M', 'A'): USCC check digit is 'M', expected 'L'" in check(
        report, "population rows").detail
    assert "population_digest" in failed(report)


def test_stratum_without_ratio_in_record():
    record = build_package(POPULATION, RATIOS)
    del record["strata"]["D"]
    report = verify_draw(record, POPULATION)
    assert "D: 1 entities in the population but no ratio in the record" in check(report, "strata").detail
    assert "no ratio" in check(report, "selection").detail


def test_targeted_entity_outside_the_population():
    outsider = make_uscc("91360202000000000")
    record = build_package(POPULATION, RATIOS, targeted=[outsider])
    report = verify_draw(record, POPULATION)
    assert failed(report) == {"targeted"}
    assert f"not in the population: {outsider}" in check(report, "targeted").detail


def test_missing_and_malformed_fields_are_listed():
    record = build_package(POPULATION, RATIOS)
    del record["nonce"]
    record["seed"] = "XYZ"
    report = verify_draw(record, POPULATION)
    detail = check(report, "record").detail
    assert "nonce: missing" in detail and "seed 'XYZ': must be 64 lower-case hex digits" in detail
    assert "not recomputed" in check(report, "selection").detail
    assert not report.ok


def test_report_text_names_failures():
    record = build_package(POPULATION, RATIOS)
    record["seed"] = "00" * 32
    assert f"FAIL seed: record says {'00' * 32}, recomputed {build_package(POPULATION, RATIOS)['seed']}" in str(
        verify_draw(record, POPULATION))


# --- population file ------------------------------------------------------------------------------
def write(tmp_path, text, name="population.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_population_csv_round_trip(tmp_path):
    path = write(tmp_path, "uscc,stratum\n" + "".join(f"{u},{s}\n" for u, s in POPULATION))
    assert list(read_population_csv(path)) == POPULATION
    assert verify_draw(build_package(POPULATION, RATIOS), read_population_csv(path)).ok


@pytest.mark.parametrize("text, match", [
    ("\ufeffuscc,stratum\n", "line 1"),
    ("stratum,uscc\n", "line 1"),
    ("uscc,stratum\n91110000600037341L,A,extra\n", "line 2"),
    ("uscc,stratum\n\n", "line 2"),
])
def test_bad_population_csv(tmp_path, text, match):
    with pytest.raises(PackageError, match=match):
        list(read_population_csv(write(tmp_path, text)))


def test_unreadable_file_is_a_failed_check(tmp_path):
    path = write(tmp_path, "uscc,stratum\n91110000600037341L;A\n")
    report = verify_draw(build_package(POPULATION, RATIOS), read_population_csv(path))
    assert "line 2" in check(report, "population rows").detail and not report.ok


def test_crlf_rows_fail(tmp_path):
    path = write(tmp_path, "uscc,stratum\n" + "".join(f"{u},{s}\r\n" for u, s in POPULATION))
    report = verify_draw(build_package(POPULATION, RATIOS), read_population_csv(path))
    assert "row 1 ('91110000600037341L', 'A\\r'): stratum" in check(report, "population rows").detail


# --- agreement with domain.draw on random populations ---------------------------------------------
bodies = st.text(alphabet=ALPHABET, min_size=17, max_size=17)
populations = st.dictionaries(bodies.map(make_uscc), st.sampled_from("ABCDU"), max_size=80).map(
    lambda d: sorted(d.items()))
ratio_texts = st.one_of(st.sampled_from(["0", "1", "1.00"]),
                        st.text(alphabet="0123456789", min_size=1, max_size=6).map(lambda d: "0." + d))
secrets = st.binary(min_size=32, max_size=32)


@settings(max_examples=60)
@given(populations, st.fixed_dictionaries({s: ratio_texts for s in "ABCDU"}), secrets, secrets,
       st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20))
def test_verifier_agrees_with_domain_draw(rows, ratios, salt, nonce, entropy):
    record = build_package(rows, ratios, salt=salt, nonce=nonce, entropy=entropy)
    report = verify_draw(record, rows)
    assert report.ok, str(report)


@settings(max_examples=30)
@given(populations.filter(lambda rows: len(rows) >= 10), secrets, secrets)
def test_verifier_catches_any_swapped_selection(rows, nonce, other):
    record = build_package(rows, dict.fromkeys("ABCDU", "0.3"), nonce=nonce)
    selected = set(record["selected"])
    outsider = next(uscc for uscc, _ in rows if uscc not in selected)
    record["selected"] = sorted(selected - {record["selected"][0]} | {outsider})
    assert "selection" in failed(verify_draw(record, rows))


# --- dispatch -------------------------------------------------------------------------------------
DRAW_SEED = "5d6fc6ed64f213e6cfda10a9385efd683d7a5f496ca44223a0045846e9bcf2de"
SELECTED = ["91350100M000100Y43", "91360200158380283L", "91360202705565720F", "91360203MA38TKN619",
            "92360202MA3AK9JP2C"]
LATER = date(2027, 12, 31)
POOL = [
    dispatch_protocol.PoolInspector("I01", "active", LATER, ("registration",), ()),
    dispatch_protocol.PoolInspector("I02", "active", LATER, ("food", "registration"), ("91350100M000100Y43",)),
    dispatch_protocol.PoolInspector("I03", "active", date(2025, 1, 31), ("registration",), ()),
    dispatch_protocol.PoolInspector("I04", "active", LATER, ("registration",), ()),
    dispatch_protocol.PoolInspector("I05", "inactive", LATER, ("registration",), ()),
]


def dispatch_package(unit="360202-SCJ", team_size=2, load_cap=2, members=POOL, targets=SELECTED,
                     required=("registration",), draw_seed=DRAW_SEED):
    """A dispatch record and its pool file, computed with domain.dispatch."""
    pool = dispatch_protocol.pool_file(members)
    digest = dispatch_protocol.pool_digest(pool)
    seed2 = dispatch_protocol.dispatch_seed(bytes.fromhex(draw_seed), unit, digest, team_size, load_cap)
    outcome = dispatch_protocol.dispatch(seed2, targets, members, required, team_size, load_cap,
                                         date(2025, 4, 1))
    record = {
        "protocol": dispatch_protocol.PROTOCOL, "task_id": "JDZ-2025-0001", "as_of": "2025-04-01",
        "units": {unit: {"pool_digest": digest, "team_size": team_size, "load_cap": load_cap}},
        "teams": {u: [{"unit": unit, "inspectors": team}] for u, team in outcome.teams.items()},
        "unstaffed": {u: [{"unit": unit, "reason": why}] for u, why in outcome.unstaffed.items()},
        "manual": {},
    }
    return record, {unit: pool}


def test_dispatch_vector_verifies():
    record, pools = dispatch_package()
    assert record["units"]["360202-SCJ"]["pool_digest"] == \
        "f647c3c2235150c12dfb177ee43819420554ce9cd9017c51ae9bf3cb57fddbb0"
    report = verify_dispatch(record, pools, DRAW_SEED, ["registration"], SELECTED)
    assert report.ok, str(report)


def test_dispatch_with_changed_team_fails():
    record, pools = dispatch_package()
    tampered = copy.deepcopy(record)
    tampered["teams"]["91360202705565720F"][0]["inspectors"] = ["I02", "I04"]
    detail = check(verify_dispatch(tampered, pools, DRAW_SEED, ["registration"], SELECTED),
                   "unit 360202-SCJ: teams").detail
    assert "91360202705565720F: record says ['I02', 'I04'], recomputed ['I04', 'I02']" in detail


def test_dispatch_with_changed_pool_fails():
    record, pools = dispatch_package()
    pool = pools["360202-SCJ"].replace(b"I05\tinactive", b"I05\tactive")
    report = verify_dispatch(record, {"360202-SCJ": pool}, DRAW_SEED, ["registration"], SELECTED)
    assert "unit 360202-SCJ: pool_digest" in failed(report)


def test_dispatch_without_pool_file_fails():
    record, _ = dispatch_package()
    report = verify_dispatch(record, {}, DRAW_SEED, ["registration"], SELECTED)
    assert not report.ok and "no pool file" in check(report, "unit 360202-SCJ: pool").detail


@pytest.mark.parametrize("team_size, load_cap", [(2, 0), (3, 1), (3, 0)])
def test_dispatch_verifier_agrees_with_domain_dispatch(team_size, load_cap):
    record, pools = dispatch_package(team_size=team_size, load_cap=load_cap)
    assert verify_dispatch(record, pools, DRAW_SEED, ["registration"], SELECTED).ok


def test_dispatch_with_bad_seed_or_record_fails():
    record, pools = dispatch_package()
    assert "draw seed" in failed(verify_dispatch(record, pools, "xyz", ["registration"], SELECTED))
    del record["as_of"]
    assert "record" in failed(verify_dispatch(record, pools, DRAW_SEED, ["registration"], SELECTED))


@st.composite
def dispatch_scenarios(draw):
    targets = draw(st.lists(st.integers(0, 10**9 - 1).map(lambda n: make_uscc(f"91360202{n:09d}")),
                            max_size=20, unique=True))
    tags = ["registration", "food"]
    members = [
        dispatch_protocol.PoolInspector(
            f"I{n:02d}", draw(st.sampled_from(["active", "active", "inactive"])),
            draw(st.dates(date(2025, 1, 1), date(2026, 12, 31))),
            tuple(draw(st.lists(st.sampled_from(tags), unique=True))),
            tuple(draw(st.lists(st.sampled_from(targets), unique=True))) if targets else ())
        for n in range(draw(st.integers(0, 15)))
    ]
    return dict(members=members, targets=targets, required=draw(st.lists(st.sampled_from(tags), unique=True)),
                team_size=draw(st.integers(2, 3)), load_cap=draw(st.integers(0, 3)),
                draw_seed=draw(secrets).hex())


@settings(max_examples=60)
@given(dispatch_scenarios())
def test_dispatch_verifier_agrees_on_random_pools(scenario):
    record, pools = dispatch_package(**scenario)
    report = verify_dispatch(record, pools, scenario["draw_seed"], scenario["required"], scenario["targets"])
    assert report.ok, str(report)
