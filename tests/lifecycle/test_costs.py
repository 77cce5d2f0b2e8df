"""The cost arithmetic, checked against figures worked out by hand."""

from __future__ import annotations

from decimal import Decimal

from lifecycle.domain.costs import Prices, billable, cents, early_deletion_charge, monthly_cost

TB = 2**40
GB = 2**30
PRICES = Prices()


def test_a_scenario_worked_by_hand_matches_to_the_cent():
    # 2 TB hot, 4 TB warm in 32 MiB packs, 10 TB cold in 32 MiB packs, plus 1,000
    # small warm packs of 64 KiB (billed as 128 KiB each).
    pack = 32 * 2**20
    objects = [(2 * TB, "hot")]
    objects += [(pack, "warm")] * (4 * TB // pack)
    objects += [(pack, "cold")] * (10 * TB // pack)
    objects += [(64 * 1024, "warm")] * 1000
    bill = monthly_cost(objects, PRICES)
    # By hand:
    #   hot:  2 TB x $23 = $46.00, plus the cold packs' 8 KiB each at the hot price:
    #         327,680 packs x 8 KiB = 2.5 GiB = 2.5/1024 TB x $23 = $0.0562 -> hot $46.06
    #   warm: 4 TB x $12.50 = $50.00, plus 1,000 x 128 KiB = 125 MiB at $12.50/TB
    #         = 125/1048576 x 12.50 = $0.0015 -> warm $50.00
    #   cold: 10 TB x $4 = $40.00, plus 327,680 x 32 KiB = 10 GiB = 10/1024 TB x $4
    #         = $0.0391 -> cold $40.04
    assert bill.per_tier_cents() == {
        "hot": Decimal("46.06"),
        "warm": Decimal("50.00"),
        "cold": Decimal("40.04"),
    }
    assert bill.total == Decimal("136.10")
    assert bill.stored_bytes["cold"] == 10 * TB
    # The minimums alone: 1,000 x 64 KiB of padding in warm, 40 KiB per cold pack.
    assert cents(bill.minimum_size_dollars) == Decimal("0.10")


def test_small_objects_pay_the_minimum_size():
    assert billable(10_000, "warm").bytes_at == {"warm": 128 * 1024}
    assert billable(10_000, "cold").bytes_at == {"cold": 10_000 + 32 * 1024, "hot": 8 * 1024}
    assert billable(10_000, "hot").minimum_size_bytes == 0


def test_leaving_a_tier_early_bills_the_rest_of_its_minimum_duration():
    # 3 TB cold for 30 of its 90 days: 60 days = 2 months x 3 x $4 = $24.00
    charge = early_deletion_charge(3 * TB - 32 * 1024, "cold", 30, PRICES)
    assert cents(charge) == Decimal("24.00")
    # 1 TB warm for 20 of 30 days: 10 days = 1/3 month x $12.50 = $4.17
    assert cents(early_deletion_charge(TB, "warm", 20, PRICES)) == Decimal("4.17")
    assert early_deletion_charge(TB, "warm", 45, PRICES) == 0
    assert early_deletion_charge(TB, "hot", 0, PRICES) == 0
