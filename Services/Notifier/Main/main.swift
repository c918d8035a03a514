import Foundation
import Notifier
import ServiceKit

let status = await ServiceMain.run(
    service: NotifierService.name, upstreams: NotifierService.upstreams, extraKeys: NotifierService.settings
) { options, environment in
    try NotifierService.build(options: options, environment: environment)
}
exit(status)
