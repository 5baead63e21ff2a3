"""Reading a Prometheus text endpoint and the metric names of a PromQL expression, for the tests."""
from __future__ import annotations

import re
import socket
import urllib.request

# Words of PromQL that are not series: aggregation modifiers and binary operators.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def scrape(address: str) -> dict[str, float]:
    """{'name{labels}': value} of every sample the endpoint serves."""
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def names(samples: dict[str, float]) -> set[str]:
    return {series.split("{", 1)[0] for series in samples}


def value(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` that carry every label given."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for series, v in samples.items()
               if series.split("{", 1)[0] == name and all(w in series for w in wanted))


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are neither functions, keywords,
    label names (inside {} or a by/without list), durations nor strings."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    found = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if match.group() not in KEYWORDS and not rest.startswith("("):
            found.add(match.group())
    return found


def alert_expressions(rules_text: str) -> dict[str, str]:
    """{alert: expr} of a rules file whose every `expr:` is one line (deploy/prometheus/alerts.yml)."""
    alerts = re.findall(r"^\s*- alert:\s*(\S+)\s*$", rules_text, re.M)
    exprs = re.findall(r"^\s*expr:\s*(.+?)\s*$", rules_text, re.M)
    assert len(alerts) == len(exprs) and alerts, "every alert has one one-line expr"
    return dict(zip(alerts, exprs))


def free_port_pair() -> int:
    """A port p with p+1 free too (a worker's two processes), as far as one can tell now."""
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
