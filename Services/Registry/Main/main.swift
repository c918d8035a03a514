import Foundation
import Registry
import ServiceKit

let status = await ServiceMain.run(service: RegistryService.name) { options, environment in
    try RegistryService.build(options: options, environment: environment)
}
exit(status)
