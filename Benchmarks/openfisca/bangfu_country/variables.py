"""The state-property rent waiver (policies/soe-rent-waiver.yaml, revision 2) as OpenFisca variables.

Inputs are facts about a lease (and its merchant, copied onto the lease) as of the screening:
they are ETERNITY variables. The results are YEAR variables with a formula dated from 2022-01-01
and an `end` of 2022-12-31: the programme exists in 2022 only, and its benefit period is the
first half of that year (from the policy's `period`). Every formula is vectorised numpy over all
leases at once.

Three-valued logic (DESIGN.md §6.2), as Bangfu evaluates it: a clause that reads a missing fact
is unknown; `false && unknown` is false. Two clauses can be unknown here:
  - the size clause, when the merchant is not an individual business and its size is `unknown`;
  - the root-lessor clause, when the sublease chain is incomplete (`chain_complete` false) or
    the root lessor's ownership is missing (null).
A lease is `eligible` when every clause is true, `incomplete` when no clause is false but one is
unknown, and ineligible otherwise. Unknowns never count as true.

Money is integer fen (int64), rounded once, half away from zero (DESIGN.md §5.3).
"""

import datetime

import numpy

from openfisca_core.indexed_enums import Enum
from openfisca_core.periods import ETERNITY, YEAR
from openfisca_core.variables import Variable, config

from .entities import Lease

# OpenFisca's `int` is int32; fen amounts need int64 (rent × 12 × days overflows int32 for any
# rent above about 10,000 yuan a month). Register int64 as a value type of its own.
config.VALUE_TYPES.setdefault(
    numpy.int64,
    {
        "dtype": numpy.int64,
        "default": numpy.int64(0),
        "json_type": "integer",
        "formatted_value_type": "Int",
        "is_period_size_independent": True,
    },
)

# The benefit period of the policy (`period: {from: 2022-01-01, to: 2022-06-30}`), inclusive.
PERIOD_FROM = numpy.datetime64("2022-01-01", "D")
PERIOD_TO = numpy.datetime64("2022-06-30", "D")
DAYS_IN_YEAR = 365  # the policy's pro-rata divisor (monthly rent × 12 × days / 365)


# --- enumerations (code order is the array encoding the loader uses) -------------------------


class Kind(Enum):
    ENTERPRISE = "enterprise"
    INDIVIDUAL = "individual"


class Size(Enum):
    UNKNOWN = "unknown"
    LARGE = "large"
    MEDIUM = "medium"
    SMALL = "small"
    MICRO = "micro"
    INDIVIDUAL = "individual"


class Status(Enum):
    OTHER = "other"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEREGISTERED = "deregistered"


class Ownership(Enum):
    UNKNOWN = "unknown (null)"
    OTHER = "other"
    STATE_ENTERPRISE = "state_enterprise"
    GOVERNMENT = "government"
    PRIVATE = "private"


class Use(Enum):
    OTHER = "other"
    BUSINESS = "business"
    RESIDENTIAL = "residential"
    OFFICE = "office"
    INDUSTRIAL = "industrial"
    WAREHOUSE = "warehouse"


# --- inputs -----------------------------------------------------------------------------------


# (OpenFisca reads a variable's attributes from its own class body only, so each repeats them.)


class kind(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = Enum
    possible_values = Kind
    default_value = Kind.ENTERPRISE
    label = "merchant.kind"


class size(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = Enum
    possible_values = Size
    default_value = Size.UNKNOWN
    label = "merchant.tags.size (unknown when the merchant reported no finance figures)"


class service_industry(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = bool
    label = "merchant.tags.service_industry"


class status(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = Enum
    possible_values = Status
    default_value = Status.OTHER
    label = "merchant.status"


class disqualified(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = bool
    label = "merchant.disqualified (fraud confirmed)"


class bad_credit(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = bool
    label = "merchant has a serious_violation or dishonest_debtor credit flag"


class root_ownership(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = Enum
    possible_values = Ownership
    default_value = Ownership.UNKNOWN
    label = "root_lessor(lease).ownership"


class chain_complete(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = bool
    default_value = True
    label = "the registry can follow the sublease chain up to the root lessor"


class sublet(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = bool
    label = "sublet(lease, period): the tenant sublets these premises onwards during the period"


class use(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = Enum
    possible_values = Use
    default_value = Use.OTHER
    label = "lease.use"


class monthly_rent_fen(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = numpy.int64
    unit = "fen"
    label = "lease.monthly_rent_fen"


class starts_on(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = datetime.date
    label = "lease.starts_on"


class ends_on(Variable):
    entity = Lease
    definition_period = ETERNITY
    value_type = datetime.date
    label = "lease.ends_on"


# --- formulas ---------------------------------------------------------------------------------


class overlap_days(Variable):
    entity = Lease
    definition_period = YEAR
    end = "2022-12-31"
    value_type = int
    unit = "day"
    label = "overlap_days(lease, period): inclusive days of the lease within 2022-01-01..2022-06-30"

    def formula_2022_01_01(leases, period):
        start = numpy.maximum(leases("starts_on", period), PERIOD_FROM)
        end = numpy.minimum(leases("ends_on", period), PERIOD_TO)
        days = (end - start).astype(numpy.int32) + 1
        return numpy.maximum(days, 0)


class clause_false(Variable):
    entity = Lease
    definition_period = YEAR
    end = "2022-12-31"
    value_type = bool
    label = "some clause of `eligible` is definitely false"

    def formula_2022_01_01(leases, period):
        kind = leases("kind", period)
        size = leases("size", period)
        owner = leases("root_ownership", period)
        use = leases("use", period)
        # (kind == "individual" || (size in ["small", "micro"] && service_industry)) is false
        # for an enterprise outside the service industries, or whose size is known and is
        # neither small nor micro (every individual business qualifies, in any industry).
        enterprise = kind != Kind.INDIVIDUAL
        size_false = enterprise * (
            (size != Size.SMALL) * (size != Size.MICRO) * (size != Size.UNKNOWN)
            + ~leases("service_industry", period)
        )
        # root_lessor(lease).ownership in [...] is false only when the root is known.
        root_false = (
            leases("chain_complete", period)
            * (owner != Ownership.UNKNOWN)
            * (owner != Ownership.STATE_ENTERPRISE)
            * (owner != Ownership.GOVERNMENT)
        )
        return (
            (leases("status", period) != Status.ACTIVE)
            + leases("disqualified", period)
            + size_false
            + root_false
            + leases("sublet", period)
            + (use != Use.BUSINESS) * (use != Use.OFFICE) * (use != Use.INDUSTRIAL) * (use != Use.WAREHOUSE)
            + (leases("overlap_days", period) <= 0)
            + leases("bad_credit", period)
        )


class facts_missing(Variable):
    entity = Lease
    definition_period = YEAR
    end = "2022-12-31"
    value_type = bool
    label = "some clause of `eligible` reads a missing fact (unknown size or root lessor)"

    def formula_2022_01_01(leases, period):
        size_unknown = (leases("kind", period) != Kind.INDIVIDUAL) * (
            leases("size", period) == Size.UNKNOWN
        )
        root_unknown = ~leases("chain_complete", period) + (
            leases("root_ownership", period) == Ownership.UNKNOWN
        )
        return size_unknown + root_unknown


class eligible(Variable):
    entity = Lease
    definition_period = YEAR
    end = "2022-12-31"
    value_type = bool
    label = "every clause of the policy's `eligible` is true"

    def formula_2022_01_01(leases, period):
        return ~(leases("clause_false", period) + leases("facts_missing", period))


class incomplete(Variable):
    entity = Lease
    definition_period = YEAR
    end = "2022-12-31"
    value_type = bool
    label = "no clause is false but one is unknown: Bangfu emits entitlement.incomplete"

    def formula_2022_01_01(leases, period):
        return ~leases("clause_false", period) * leases("facts_missing", period)


class amount_fen(Variable):
    entity = Lease
    definition_period = YEAR
    end = "2022-12-31"
    value_type = numpy.int64
    unit = "fen"
    label = "the rent waived, in fen (0 unless eligible)"

    def formula_2022_01_01(leases, period, parameters):
        p = parameters(period.start).soe_rent_waiver
        rent = leases("monthly_rent_fen", period)
        days = leases("overlap_days", period).astype(numpy.int64)
        full = rent * numpy.int64(p.months_waived)
        # rent × 12 × days / 365, rounded once, half away from zero; x >= 0 so that is
        # floor((2x + 365) / 730) in exact integer arithmetic.
        x = rent * (12 * days)
        pro_rata = (2 * x + DAYS_IN_YEAR) // (2 * DAYS_IN_YEAR)
        amount = numpy.where(days >= p.full_months_from_days, full, pro_rata)
        return numpy.where(leases("eligible", period), amount, numpy.int64(0))


inputs = [
    kind,
    size,
    service_industry,
    status,
    disqualified,
    bad_credit,
    root_ownership,
    chain_complete,
    sublet,
    use,
    monthly_rent_fen,
    starts_on,
    ends_on,
]
results = [overlap_days, clause_false, facts_missing, eligible, incomplete, amount_fen]
