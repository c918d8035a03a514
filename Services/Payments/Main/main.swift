import Foundation
import Payments
import ServiceKit

// The router's own settings (a percentage that is not one, a treasury debtor that makes no valid
// pain.001, …) are checked at every start and by `--check-config`: a bad value is a
// configuration error, exit 64, as a bad flag is.
let status = await ServiceMain.run(
    service: PaymentsService.name, upstreams: PaymentsService.upstreams, extraKeys: PaymentsService.settings,
    validate: { options in _ = try PaymentsService.paymentsSettings(options: options) },
    warnings: { options in PaymentsService.warnings(options: options) },
    effective: { options in PaymentsService.effectiveSettings(options: options) }
) { options, environment in
    try PaymentsService.build(options: options, environment: environment)
}
exit(status)
