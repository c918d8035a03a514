import Foundation
import Payments
import ServiceKit

let status = await ServiceMain.run(
    service: PaymentsService.name, upstreams: PaymentsService.upstreams, extraKeys: PaymentsService.settings
) { options, environment in
    try PaymentsService.build(options: options, environment: environment)
}
exit(status)
