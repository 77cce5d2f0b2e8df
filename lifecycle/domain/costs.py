"""What storage costs: the arithmetic of tiers, minimum sizes and minimum durations.

Plain Python with Decimal, so the figures on the cost page add up to the cent.
Prices are per TB-month where, as in AWS billing, a TB is 2^40 bytes and a month
is 30 days. The minimums follow the S3 classes each tier maps to (AWS S3 pricing
and storage-class documentation):

- warm (Standard-IA): an object is billed for at least 128 KiB, and for at least
  30 days — moving or deleting it earlier bills the remaining days;
- cold (Glacier Flexible Retrieval): each object carries 40 KiB of metadata, 32 KiB
  billed at the cold price and 8 KiB at the hot price, and at least 90 days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

HOT, WARM, COLD = "hot", "warm", "cold"
TB = Decimal(2**40)
KIB = 1024
DAYS_PER_MONTH = Decimal(30)
MINIMUM_OBJECT_BYTES = {WARM: 128 * KIB}
COLD_OVERHEAD_COLD_BYTES = 32 * KIB
COLD_OVERHEAD_HOT_BYTES = 8 * KIB
MINIMUM_DAYS = {HOT: 0, WARM: 30, COLD: 90}
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Prices:
    """Dollars per TB-month of each tier (settings: $23, $12.50 and $4 by default)."""

    hot: Decimal = Decimal("23")
    warm: Decimal = Decimal("12.50")
    cold: Decimal = Decimal("4")

    def of(self, tier: str) -> Decimal:
        return {HOT: self.hot, WARM: self.warm, COLD: self.cold}[tier]


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Billable:
    """The bytes an object is billed for, per tier price."""

    bytes_at: dict[str, int]
    minimum_size_bytes: int  # of which: padding up to a minimum size or overhead


def billable(size: int, tier: str) -> Billable:
    """What an object of `size` bytes in `tier` is billed for each month."""
    if tier == WARM:
        billed = max(size, MINIMUM_OBJECT_BYTES[WARM])
        return Billable({WARM: billed}, billed - size)
    if tier == COLD:
        return Billable(
            {COLD: size + COLD_OVERHEAD_COLD_BYTES, HOT: COLD_OVERHEAD_HOT_BYTES},
            COLD_OVERHEAD_COLD_BYTES + COLD_OVERHEAD_HOT_BYTES,
        )
    return Billable({HOT: size}, 0)


@dataclass(frozen=True)
class MonthlyCost:
    stored_bytes: dict[str, int]
    billed_bytes: dict[str, int]
    dollars: dict[str, Decimal]  # per tier, unrounded
    minimum_size_dollars: Decimal

    @property
    def total(self) -> Decimal:
        return cents(self.exact_total)

    @property
    def exact_total(self) -> Decimal:
        """Unrounded: a bill of a fraction of a cent is not nothing."""
        return sum(self.dollars.values(), Decimal(0))

    def per_tier_cents(self) -> dict[str, Decimal]:
        return {tier: cents(amount) for tier, amount in self.dollars.items()}


def monthly_cost(objects: Iterable[tuple[int, str]], prices: Prices) -> MonthlyCost:
    """The monthly bill of objects given as (size, tier)."""
    stored = {HOT: 0, WARM: 0, COLD: 0}
    billed = {HOT: 0, WARM: 0, COLD: 0}
    padding_dollars = Decimal(0)
    for size, tier in objects:
        stored[tier] += size
        bill = billable(size, tier)
        for billed_tier, amount in bill.bytes_at.items():
            billed[billed_tier] += amount
        if bill.minimum_size_bytes:
            if tier == WARM:
                padding_dollars += Decimal(bill.minimum_size_bytes) * prices.warm / TB
            else:
                padding_dollars += (
                    Decimal(COLD_OVERHEAD_COLD_BYTES) * prices.cold
                    + Decimal(COLD_OVERHEAD_HOT_BYTES) * prices.hot
                ) / TB
    dollars = {tier: Decimal(billed[tier]) * prices.of(tier) / TB for tier in billed}
    return MonthlyCost(stored, billed, dollars, padding_dollars)


def early_deletion_charge(size: int, tier: str, days_stored: int, prices: Prices) -> Decimal:
    """What leaving `tier` after `days_stored` days costs: the rest of its minimum
    duration, billed at once (S3 prorates it by day)."""
    remaining = MINIMUM_DAYS[tier] - days_stored
    if remaining <= 0:
        return Decimal(0)
    bill = billable(size, tier)
    monthly = sum((Decimal(amount) * prices.of(t) / TB for t, amount in bill.bytes_at.items()), Decimal(0))
    return monthly * Decimal(remaining) / DAYS_PER_MONTH
