import Foundation
import Registry
import ServiceKit

let status = await ServiceMain.run(service: RegistryService.name, validate: RegistryService.validate) { options, environment in
    try RegistryService.build(options: options, environment: environment)
}
exit(status)
