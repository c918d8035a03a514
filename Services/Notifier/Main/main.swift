import Foundation
import Notifier
import ServiceKit

// `--check-config` also checks the notifier's own settings (the board's fields and retention,
// the holiday calendar, the templates, the webhook URL), which the shared check does not know.
let arguments = Array(CommandLine.arguments.dropFirst())
if let options = try? ServiceOptions.parse(
    service: NotifierService.name, upstreams: NotifierService.upstreams, extraKeys: NotifierService.settings, arguments: arguments),
    options.checkConfig
{
    do {
        try NotifierService.checkSettings(options: options)
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        exit(64)
    }
}

let status = await ServiceMain.run(
    service: NotifierService.name, upstreams: NotifierService.upstreams, extraKeys: NotifierService.settings
) { options, environment in
    try NotifierService.build(options: options, environment: environment)
}
exit(status)
