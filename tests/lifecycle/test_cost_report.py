"""The cost report, checked against a scenario worked out by hand, to the cent, in
the service, `strata cost --json` and the cost page alike.

The scenario (prices $23, $12.50 and $4 per TB-month; a TB is 2^40 bytes):

- reviews@main: v1 (25 days ago, a.bin) and v2 (5 days ago, a.bin + b.bin).
  a.bin's pack is 1 TB hot: $23.00. b.bin's pack is 0.5 TB warm since v2: $6.25.
- archive@main: one version 225 days ago; its pack is 3 TB cold for 125 days:
  $12.00, plus 40 KiB of Glacier metadata per object (32 KiB at the cold price,
  8 KiB at the hot), which is $0.0000003: $0.00 after rounding.
- Total $41.25 a month; minimum-size charges $0.00.
- Policies (defaults): v2 was used 5 days ago, so b.bin's pack must come back to
  hot; it has been warm 5 of its 30 minimum days: 25/30 of $6.25 = $5.21 due.
- In 30 days (v1 idle 55, v2 idle 35 days): both reviews packs warm, 1.5 TB at
  $12.50 = $18.75, the archive stays cold $12.00: $30.75. In 90 days: the same.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.core.management import call_command

from lifecycle.services.costs import cost_report, timeline_svg
from tests.factories.retention import TB


def test_cost_figures_match_the_hand_worked_scenario_to_the_cent(cost_scenario):
    report = cost_report(now=cost_scenario["now"])
    data = report.as_dict()
    assert {tier: row["monthly_dollars"] for tier, row in data["tiers"].items()} == {
        "hot": "23.00",
        "warm": "6.25",
        "cold": "12.00",
    }
    assert data["monthly_dollars"] == "41.25"
    assert data["minimum_size_dollars"] == "0.00"
    assert data["minimum_duration_dollars"] == "5.21"
    assert data["projections"] == {"30_days": "30.75", "90_days": "30.75"}
    by_name = {usage["name"]: usage for usage in data["datasets"]}
    assert by_name["reviews"]["monthly_dollars"] == "29.25"
    assert by_name["archive"]["monthly_dollars"] == "12.00"
    assert by_name["reviews"]["logical_bytes"] == 60_000
    assert by_name["reviews"]["stored_bytes"] == TB + TB // 2
    assert {usage["name"] for usage in data["branches"]} == {"reviews@main", "archive@main"}
    statuses = {status["label"]: status for status in data["versions"]}
    assert statuses["archive@1.0.0"]["tier"] == "cold"
    assert statuses["archive@1.0.0"]["restorable_in"] == "about 4 h"
    assert statuses["reviews@1.1.0"]["tier"] == "warm"
    assert "reviews:main is kept forever" in statuses["reviews@1.0.0"]["kept_because"]
    assert report.total == Decimal("41.25")
    svg = timeline_svg(report)
    assert svg.startswith("<svg") and "$41.25/month" in svg


def test_strata_cost_json_gives_the_same_figures(cost_scenario):
    from io import StringIO

    out = StringIO()
    call_command("strata", "cost", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["monthly_dollars"] == "41.25"
    assert data["tiers"]["warm"]["monthly_dollars"] == "6.25"
    assert data["projections"]["30_days"] == "30.75"
    text = StringIO()
    call_command("strata", "cost", stdout=text)
    assert "41.25" in text.getvalue() and "restorable in about 4 h" in text.getvalue()
