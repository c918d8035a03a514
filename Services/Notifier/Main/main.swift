import Foundation
import Notifier
import ServiceKit

// The notifier's own settings (the board's fields and retention, the holiday calendar, the
// templates, the webhook URL) are checked at every start and by `--check-config`.
let status = await ServiceMain.run(
    service: NotifierService.name, upstreams: NotifierService.upstreams, extraKeys: NotifierService.settings,
    validate: { options in try NotifierService.checkSettings(options: options) },
    warnings: { options in NotifierService.warnings(options: options) },
    effective: { options in NotifierService.effectiveSettings(options: options) }
) { options, environment in
    try NotifierService.build(options: options, environment: environment)
}
exit(status)
