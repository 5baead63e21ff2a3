#!/usr/bin/env python3
"""Generate the sample directories shipped in examples/ for the demo (景德镇市, synthetic).

One file on purpose (over 500 lines): a standalone script a bureau can read top to bottom and run
without the project installed; most of its length is the synthetic place, industry and item tables.

Deterministic: one ``random.Random(seed)``, no clock, no environment. Running it twice with the
same seed writes byte-identical files (UTF-8 without BOM, LF line ends, header row), in the CSV
formats of the operator contract (shared spec ``contract.md``):

    units.csv        unit_code,name,parent_code,review_required
    items.csv        item_code,name,legal_basis,category,methods,qualification,effective_from,
                     effective_to,public_info_check,ratio_cap,target_labels,checklist
    entities.csv     uscc,name,subject_type,region,industry,risk_class,status,address,labels
    inspectors.csv   inspector_id,name,unit_code,region,qualifications,expertise,recusal,cert_no,
                     cert_expiry,status,roles
    plan-template.json   the demo's annual plan (plan file format)

Usage::

    python examples/generate.py                 # writes next to this file
    python examples/generate.py --out DIR --seed 20250301 --entities 3000

All entities, people and codes are invented; the USCCs are valid (GB 32100-2015 check digit)
but random, so any resemblance to a registered business is a coincidence.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import random
import sys
from collections import Counter
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `python examples/generate.py` from a checkout
    sys.path.insert(0, str(_ROOT))

from domain.uscc import ALPHABET, make_uscc, uscc_problem  # noqa: E402

DEFAULT_SEED = 20250301
DEFAULT_ENTITIES = 3000
PLAN_YEAR = 2025

# --------------------------------------------------------------------------- units

CITY = "360200-SCJ"
PARTNER = "360200-XF"
# (unit_code, name, parent_code, review_required, region)
UNITS = [
    (CITY, "景德镇市市场监督管理局", "", True, "360200"),
    ("360202-SCJ", "景德镇市昌江区市场监督管理局", CITY, True, "360202"),
    ("360203-SCJ", "景德镇市珠山区市场监督管理局", CITY, True, "360203"),
    # The one unit that publishes results without a separate review step; the demo's county
    # task runs here, so the demo exercises both paths.
    ("360222-SCJ", "浮梁县市场监督管理局", CITY, False, "360222"),
    ("360281-SCJ", "乐平市市场监督管理局", CITY, True, "360281"),
    # Partner department for joint tasks (部门联合抽查); not in the SCJ hierarchy.
    (PARTNER, "景德镇市消防救援支队", "", True, "360200"),
]

# --------------------------------------------------------------------------- items

ITEMS = [
    {
        "item_code": "GS-001",
        "name": "企业公示信息检查",
        "legal_basis": "《企业信息公示暂行条例》第十四条；《市场监督管理行政执法责任制规定》",
        "category": "general",
        "methods": "document;online;onsite",
        "qualification": "registration",
        "public_info_check": "true",
        # General items are capped (R13); the cap must admit the demo plan's D-class ratio 0.20.
        "ratio_cap": "0.20",
        "target_labels": "",
        "checklist": "GS-001-1;GS-001-2;GS-001-3",
    },
    {
        "item_code": "SP-001",
        "name": "食品经营者食品安全监督检查",
        "legal_basis": "《中华人民共和国食品安全法》第一百一十条；《食品生产经营监督检查管理办法》第十条",
        "category": "key",
        "methods": "onsite",
        "qualification": "food",
        "public_info_check": "false",
        "ratio_cap": "",
        "target_labels": "food_licence",
        "checklist": "SP-001-1;SP-001-2;SP-001-3;SP-001-4",
    },
    {
        "item_code": "CP-001",
        "name": "生产领域产品质量监督抽查",
        "legal_basis": "《中华人民共和国产品质量法》第十五条；《产品质量监督抽查管理暂行办法》",
        "category": "general",
        "methods": "onsite;entrusted",
        "qualification": "quality",
        "public_info_check": "false",
        "ratio_cap": "0.10",
        "target_labels": "",
        "checklist": "CP-001-1;CP-001-2",
    },
    {
        "item_code": "TZ-001",
        "name": "特种设备使用单位监督检查",
        "legal_basis": "《中华人民共和国特种设备安全法》第五十七条；《特种设备安全监督检查办法》",
        "category": "key",
        "methods": "onsite",
        "qualification": "special_equipment",
        "public_info_check": "false",
        "ratio_cap": "",
        "target_labels": "special_equipment",
        "checklist": "TZ-001-1;TZ-001-2;TZ-001-3",
    },
    {
        "item_code": "JG-001",
        "name": "明码标价和价格行为检查",
        "legal_basis": "《中华人民共和国价格法》第十三条；《明码标价和禁止价格欺诈规定》第二十五条",
        "category": "general",
        "methods": "document;onsite",
        "qualification": "price",
        "public_info_check": "false",
        "ratio_cap": "0.10",
        "target_labels": "",
        "checklist": "JG-001-1;JG-001-2",
    },
]
ITEM_COLUMNS = [
    "item_code", "name", "legal_basis", "category", "methods", "qualification",
    "effective_from", "effective_to", "public_info_check", "ratio_cap", "target_labels",
    "checklist",
]

# --------------------------------------------------------------------------- entities

# region code -> (weight, name prefix for enterprises, short prefix for individual businesses,
#                 road names for addresses)
REGIONS = {
    "360200": (3, "景德镇", "景德镇", ["瓷都大道", "景东大道", "昌南大道", "高新大道"]),
    "360202": (25, "景德镇市昌江区", "昌江区",
               ["昌江大道", "新厂西路", "瓷都大道", "吕蒙路", "丽阳路", "枫林路"]),
    "360203": (30, "景德镇市珠山区", "珠山区",
               ["珠山中路", "中华北路", "中华南路", "莲社北路", "广场北路", "陶阳南路", "新风路"]),
    "360222": (15, "浮梁县", "浮梁县", ["浮梁大道", "瓷都大道北段", "朝阳路", "鹅湖路", "瑶里路"]),
    "360281": (27, "乐平市", "乐平市", ["翥山大道", "洎阳路", "人民路", "乐安大道", "塔山路"]),
}

# GB/T 4754-2017 classes used; per class: enterprise trade words, individual shop words,
# cooperative words, weights per subject type, probability of the labels.
INDUSTRIES = [
    # code,   enterprise trades,           individual shops,             coop,  w_ent w_ind w_coop, p_food, p_se
    ("C3074", ["陶瓷", "瓷业", "日用陶瓷"], ["陶瓷工作室", "瓷器经营部"], [], 11, 5, 0, 0.0, 0.08),
    ("C3075", ["艺术陶瓷", "陶瓷文化", "瓷艺"], ["陶艺工作室", "瓷画工作室"], [], 9, 10, 0, 0.0, 0.02),
    ("C3073", ["特种陶瓷", "陶瓷新材料"], [], [], 2, 0, 0, 0.0, 0.25),
    ("C1431", ["食品", "米业"], ["米粉加工坊"], [], 2, 1, 0, 0.9, 0.10),
    ("C1512", ["酒业", "酿酒"], [], [], 1, 0, 0, 0.9, 0.20),
    ("F5211", ["百货", "商贸"], ["百货商店", "日杂店"], [], 10, 8, 0, 0.0, 0.03),
    ("F5212", ["超市", "购物广场"], ["超市", "便民超市"], [], 2, 3, 0, 0.9, 0.12),
    ("F5221", ["粮油", "粮油贸易"], ["粮油店"], [], 1, 2, 0, 0.9, 0.0),
    ("F5226", ["茶业", "茶叶"], ["茶叶店", "茶庄"], [], 2, 3, 0, 0.85, 0.0),
    ("F5261", ["汽车销售服务", "汽车贸易"], [], [], 2, 0, 0, 0.0, 0.20),
    ("H6110", ["酒店管理", "大酒店"], ["宾馆", "旅馆"], [], 2, 2, 0, 0.5, 0.35),
    ("H6210", ["餐饮管理", "餐饮"], ["饭店", "餐馆", "酒家"], [], 2, 4, 0, 0.95, 0.0),
    ("H6220", ["快餐"], ["小吃店", "快餐店", "粉面馆"], [], 1, 3, 0, 0.95, 0.0),
    ("I6513", ["网络科技", "信息技术", "软件"], ["电脑经营部"], [], 10, 2, 0, 0.0, 0.0),
    ("K7020", ["物业管理", "物业服务"], [], [], 3, 0, 0, 0.0, 0.35),
    ("L7259", ["文化传媒", "广告"], ["广告部"], [], 8, 3, 0, 0.0, 0.0),
    ("E5012", ["装饰工程", "装饰设计"], ["装饰部"], [], 6, 4, 0, 0.0, 0.0),
    ("G5431", ["物流", "运输"], ["货运部"], [], 4, 2, 0, 0.0, 0.10),
    ("O8040", [], ["理发店", "美容美发店"], [], 0, 8, 0, 0.0, 0.0),
    ("A0111", [], [], ["水稻种植", "粮食种植"], 0, 0, 4, 0.0, 0.0),
    ("A0141", [], [], ["蔬菜种植", "果蔬种植"], 0, 0, 4, 0.0, 0.0),
    ("A0313", [], [], ["生猪养殖", "畜禽养殖"], 0, 0, 2, 0.0, 0.0),
]

ZIHAO_1 = list("瓷昌珠浮乐青华瑞鑫宏泰兴德盛祥源恒信金玉龙凤云鸿博达福聚和嘉安康明新宇景陶窑釉彩")
ZIHAO_2 = list("韵雅峰源盛达兴隆祥丰泰和美晟辉鼎诚汇宁轩澜川原远阳林苑坊居堂")
ENTERPRISE_FORMS = ["有限公司"] * 16 + ["有限责任公司"] * 3 + ["股份有限公司"]
COOP_FORMS = ["专业合作社", "农民专业合作社"]

# --------------------------------------------------------------------------- inspectors

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘余程汪")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华文斌慧建国红玲志鹏辉宇琳婷晨瑶")

# --------------------------------------------------------------------------- plan

PLAN = {
    "plan_code": "JDZ-DEMO",
    "year": PLAN_YEAR,
    "owner_unit": CITY,
    "tasks": [
        {
            "task_id": "JDZ-DEMO-0001",
            "task_code": "景市监抽查〔2025〕1号",
            "name": "2025年昌江区企业公示信息双随机抽查",
            "items": ["GS-001"],
            "unit": "360202-SCJ",
            "partner_units": [],
            "level": "county",
            "draw_level": "county",
            "filter": {"subject_type": ["enterprise"], "region": ["360202"]},
            "ratios": {"A": "0.03", "B": "0.05", "C": "0.10", "D": "0.20", "U": "0.05"},
            "frequency_cap": 1,
            "team_size": 2,
            "load_cap": 0,
            "entropy_source": "none",
            "starts": "2025-04-01",
            "ends": "2025-11-10",
        },
        {
            "task_id": "JDZ-DEMO-0002",
            "task_code": "景市监抽查〔2025〕2号",
            "name": "2025年珠山区食品经营者市场监管、消防联合双随机抽查",
            "items": ["SP-001"],
            "unit": "360203-SCJ",
            "partner_units": [PARTNER],
            "level": "county",
            "draw_level": "county",
            "filter": {"region": ["360203"], "labels": ["food_licence"]},
            "ratios": {"A": "0.05", "B": "0.10", "C": "0.20", "D": "0.50", "U": "0.10"},
            "frequency_cap": 1,
            "team_size": 2,
            "load_cap": 0,
            "entropy_source": "none",
            "starts": "2025-05-06",
            "ends": "2025-10-31",
        },
        {
            "task_id": "JDZ-DEMO-0003",
            "task_code": "景市监抽查〔2025〕3号",
            "name": "2025年浮梁县明码标价双随机抽查",
            "items": ["JG-001"],
            "unit": "360222-SCJ",
            "partner_units": [],
            "level": "county",
            "draw_level": "county",
            "filter": {"subject_type": ["enterprise", "individual"], "region": ["360222"]},
            "ratios": {"A": "0.02", "B": "0.03", "C": "0.05", "D": "0.10", "U": "0.03"},
            "frequency_cap": 1,
            "team_size": 2,
            "load_cap": 0,
            "entropy_source": "none",
            "starts": "2025-06-02",
            "ends": "2025-12-15",
        },
    ],
}


# =========================================================================== helpers

def _quota_list(rng: random.Random, n: int, shares: list[tuple[str, float]]) -> list[str]:
    """Exactly-apportioned values (largest remainder), shuffled: hits the mix without drift."""
    raw = [(value, share * n) for value, share in shares]
    counts = {value: int(x) for value, x in raw}
    rest = n - sum(counts.values())
    for value, x in sorted(raw, key=lambda vx: (-(vx[1] - int(vx[1])), vx[0]))[:rest]:
        counts[value] += 1
    out = [value for value, _ in shares for _ in range(counts[value])]
    rng.shuffle(out)
    return out


def _weighted(rng: random.Random, pairs: list[tuple[object, float]]):
    values = [p[0] for p in pairs]
    weights = [p[1] for p in pairs]
    return rng.choices(values, weights=weights, k=1)[0]


_GB11714 = {c: (ord(c) - 55 if c.isalpha() else int(c)) for c in ALPHABET}
_GB11714_W = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code: 8 characters plus the GB 11714 check character.

    Registrations since 2015 mostly have codes starting with ``MA`` (as on real licences);
    older ones are numeric. Every character is in the GB 32100 charset.
    """
    while True:
        if rng.random() < 0.75:
            body = "MA" + "".join(rng.choice(ALPHABET) for _ in range(6))
        else:
            body = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(7))
        c = 11 - sum(_GB11714[ch] * w for ch, w in zip(body, _GB11714_W)) % 11
        check = "X" if c == 10 else "0" if c == 11 else str(c)
        return body + check


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def _write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


# =========================================================================== generators

def gen_units() -> list[dict]:
    return [
        {
            "unit_code": code,
            "name": name,
            "parent_code": parent,
            "review_required": "true" if review else "false",
        }
        for code, name, parent, review, _ in UNITS
    ]


def gen_items() -> list[dict]:
    return [dict(item, effective_from="2020-01-01", effective_to="") for item in ITEMS]


def gen_entities(rng: random.Random, n: int) -> list[dict]:
    n_ind = round(n * 0.20)
    n_coop = round(n * 0.05)
    subject_types = _quota_list(rng, n, [
        ("enterprise", (n - n_ind - n_coop) / n), ("individual", n_ind / n),
        ("cooperative", n_coop / n),
    ])
    n_u = round(n * 0.03)
    classified = n - n_u
    risks = _quota_list(rng, n, [
        ("A", 0.35 * classified / n), ("B", 0.45 * classified / n),
        ("C", 0.15 * classified / n), ("D", 0.05 * classified / n), ("", n_u / n),
    ])
    statuses = _quota_list(rng, n, [
        ("active", 0.97), ("deregistered", 0.02), ("revoked", 0.01),
    ])
    total_w = sum(w for w, *_ in REGIONS.values())
    regions = _quota_list(rng, n, [(code, w / total_w) for code, (w, *_) in REGIONS.items()])
    type_prefix = {"enterprise": "91", "individual": "92", "cooperative": "93"}

    usccs: set[str] = set()
    names: set[str] = set()
    rows = []
    for i in range(n):
        st = subject_types[i]
        region = regions[i]
        _, ent_prefix, short_prefix, roads = REGIONS[region]
        col = {"enterprise": 4, "individual": 5, "cooperative": 6}[st]
        industry = _weighted(rng, [(ind, ind[col]) for ind in INDUSTRIES if ind[col] > 0])
        code, ent_trades, ind_shops, coop_words, _, _, _, p_food, p_se = industry

        while True:
            uscc = make_uscc(type_prefix[st] + region + _org_code(rng))
            if uscc not in usccs:
                usccs.add(uscc)
                break
        while True:
            zihao = rng.choice(ZIHAO_1) + rng.choice(ZIHAO_2)
            if st == "enterprise":
                prefix = ent_prefix if region != "360200" else "景德镇市"
                name = prefix + zihao + rng.choice(ent_trades) + rng.choice(ENTERPRISE_FORMS)
            elif st == "individual":
                name = short_prefix + zihao + rng.choice(ind_shops)
            else:
                name = ent_prefix + zihao + rng.choice(coop_words) + rng.choice(COOP_FORMS)
            if name not in names:
                names.add(name)
                break

        labels = []
        if rng.random() < p_food:
            labels.append("food_licence")
        if rng.random() < p_se:
            labels.append("special_equipment")
        address_prefix = "江西省" + (ent_prefix if region != "360200" else "景德镇市高新区")
        address = f"{address_prefix}{rng.choice(roads)}{rng.randint(1, 999)}号"
        rows.append({
            "uscc": uscc,
            "name": name,
            "subject_type": st,
            "region": region,
            "industry": code,
            "risk_class": risks[i],
            "status": statuses[i],
            "address": address,
            "labels": ";".join(labels),
        })
    for row in rows:
        assert uscc_problem(row["uscc"]) is None, row
    rows.sort(key=lambda r: r["uscc"].encode("ascii"))
    return rows


# Per SCJ unit: 8 inspectors, 2 reviewers (role `reviewer` only), 1 supervisor (role `supervisor`
# only). Extra qualification tags by position within the unit's eight inspectors (all hold
# `registration`): every unit can staff every item with a team of two, with room to spare.
_SCJ_EXTRA = [
    ["food", "quality"],
    ["food", "price"],
    ["food", "special_equipment"],
    ["food"],
    ["food", "price"],
    ["quality", "price"],
    ["special_equipment", "quality"],
    ["price", "special_equipment"],
]
_EXPERTISE = {
    "registration": "enterprise_registration",
    "food": "food_safety",
    "quality": "product_quality",
    "special_equipment": "boilers_lifts",
    "price": "pricing",
}


def gen_inspectors(rng: random.Random, entities: list[dict]) -> list[dict]:
    rows: list[dict] = []
    used_names: set[str] = set()

    def person() -> str:
        while True:
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
            if name not in used_names:
                used_names.add(name)
                return name

    seq = 0
    for unit_code, _, _, _, region in UNITS:
        partner = unit_code == PARTNER
        staff = [("inspector", k) for k in range(8)] + [("reviewer", 0), ("reviewer", 1),
                                                         ("supervisor", 0)]
        for n_in_unit, (role, k) in enumerate(staff):
            seq += 1
            if partner:
                # The dispatch protocol asks every dispatching unit's inspectors to hold the
                # items' qualifications, so the fire brigade's joint-check officers carry the
                # `food` tag (trained for joint food-premises checks).
                quals = ["fire_safety", "food", "registration"]
                expertise = ["fire_safety", "food_safety"] if role == "inspector" else ["fire_safety"]
            elif role == "inspector":
                quals = sorted(["registration", *_SCJ_EXTRA[k]])
                expertise = sorted({_EXPERTISE[q] for q in quals})
            else:
                quals = ["registration"] + (["food"] if role == "reviewer" and k == 0 else [])
                expertise = ["enterprise_registration", "legal_review"]
            rows.append({
                "inspector_id": f"JDZ-I{seq:03d}",
                "name": person(),
                "unit_code": unit_code,
                "region": region,
                "qualifications": ";".join(sorted(quals)),
                "expertise": ";".join(sorted(expertise)),
                "recusal": "",
                "cert_no": f"{region}{rng.randint(15, 24):02d}{seq:04d}",
                "cert_expiry": "2028-12-31" if rng.random() < 0.8 else "2027-12-31",
                "status": "active",
                "roles": role,
            })

    by_id = {r["inspector_id"]: r for r in rows}

    def unit_staff(unit: str, role: str = "inspector") -> list[dict]:
        return [r for r in rows if r["unit_code"] == unit and r["roles"] == role]

    # Two expired certificates (never drawn, R2), two inactive officers; spread over the demo's
    # task units so each still has at least six eligible inspectors.
    unit_staff("360202-SCJ")[7]["cert_expiry"] = "2024-12-31"
    unit_staff("360203-SCJ")[5]["cert_expiry"] = "2025-03-31"
    unit_staff("360202-SCJ")[3]["status"] = "inactive"
    unit_staff("360222-SCJ")[6]["status"] = "inactive"

    # Recusals (回避): an officer's relative's business in the unit's own district.
    def pick(region: str, st: str, count: int) -> list[str]:
        pool = [e["uscc"] for e in entities
                if e["region"] == region and e["subject_type"] == st and e["status"] == "active"]
        return sorted(rng.sample(pool, count))

    unit_staff("360202-SCJ")[0]["recusal"] = ";".join(pick("360202", "enterprise", 1))
    unit_staff("360203-SCJ")[1]["recusal"] = ";".join(
        pick("360203", "enterprise", 1) + pick("360203", "individual", 1))
    assert len(by_id) == len(rows)
    return rows


# =========================================================================== main

def generate(out: Path, seed: int = DEFAULT_SEED, n_entities: int = DEFAULT_ENTITIES) -> dict:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    units = gen_units()
    items = gen_items()
    entities = gen_entities(rng, n_entities)
    inspectors = gen_inspectors(rng, entities)

    _write(out / "units.csv", _csv_text(["unit_code", "name", "parent_code", "review_required"], units))
    _write(out / "items.csv", _csv_text(ITEM_COLUMNS, items))
    _write(out / "entities.csv", _csv_text(
        ["uscc", "name", "subject_type", "region", "industry", "risk_class", "status", "address",
         "labels"], entities))
    _write(out / "inspectors.csv", _csv_text(
        ["inspector_id", "name", "unit_code", "region", "qualifications", "expertise", "recusal",
         "cert_no", "cert_expiry", "status", "roles"], inspectors))
    _write(out / "plan-template.json", json.dumps(PLAN, ensure_ascii=False, indent=2) + "\n")
    return {"units": units, "items": items, "entities": entities, "inspectors": inspectors}


def summary(data: dict) -> str:
    ents = data["entities"]
    active = [e for e in ents if e["status"] == "active"]
    lines = [f"entities: {len(ents)}"]
    for key in ("subject_type", "status", "region"):
        lines.append(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in sorted(Counter(e[key] for e in ents).items())))
    lines.append("  risk_class: " + ", ".join(
        f"{k or 'U'}={v}" for k, v in sorted(Counter(e["risk_class"] for e in ents).items())))
    labels = Counter(lab for e in ents for lab in e["labels"].split(";") if lab)
    lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    for task in PLAN["tasks"]:
        f = task["filter"]
        pop = [e for e in active
               if all(any(e[k].startswith(v) for v in f[k]) for k in ("subject_type", "region") if k in f)
               and all(any(lab in e["labels"].split(";") for lab in f[k]) for k in ("labels",) if k in f)]
        strata = Counter(e["risk_class"] or "U" for e in pop)
        lines.append(f"  {task['task_id']} population (active, before exclusions): {len(pop)} "
                     + " ".join(f"{s}={strata[s]}" for s in sorted(strata)))
    insp = data["inspectors"]
    lines.append(f"inspectors: {len(insp)}")
    for unit, count in sorted(Counter(r["unit_code"] for r in insp).items()):
        roles = Counter(r["roles"] for r in insp if r["unit_code"] == unit)
        lines.append(f"  {unit}: {count} ({', '.join(f'{k}={v}' for k, v in sorted(roles.items()))})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output directory (default: the examples/ directory)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--entities", type=int, default=DEFAULT_ENTITIES)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    data = generate(args.out, args.seed, args.entities)
    if not args.quiet:
        print(summary(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
