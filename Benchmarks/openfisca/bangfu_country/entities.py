"""Entities: the lease is the only (person-like) entity, one row per lease.

The Bangfu rule is evaluated per lease (`per: lease`); the merchant's facts are copied onto each
of its leases by the exporter, so no group entity is needed, and none is declared: a group
entity would only add membership arrays that no formula reads.
"""

from openfisca_core.entities import build_entity

Lease = build_entity(
    key="lease",
    plural="leases",
    label="A lease of premises by a merchant (with the merchant's facts copied onto it)",
    is_person=True,
)

entities = [Lease]
