import Foundation
import Matcher
import ServiceKit

let status = await ServiceMain.run(service: MatcherService.name, upstreams: MatcherService.upstreams) { options, environment in
    try MatcherService.build(options: options, environment: environment)
}
exit(status)
