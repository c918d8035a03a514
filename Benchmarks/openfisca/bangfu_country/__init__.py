"""bangfu_country: a minimal OpenFisca country package for one comparison.

It implements Bangfu's state-property rent waiver (policies/soe-rent-waiver.yaml) so that
`bangfu-bench screen` can time Bangfu against OpenFisca on the same population. It is a
benchmark fixture, not a second implementation of Bangfu's policies.
"""

import os

from openfisca_core.taxbenefitsystems import TaxBenefitSystem

from . import entities, variables

PARAMETERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parameters")


class CountryTaxBenefitSystem(TaxBenefitSystem):
    def __init__(self) -> None:
        super().__init__(entities.entities)
        self.add_variables(*variables.inputs, *variables.results)
        self.load_parameters(PARAMETERS)
