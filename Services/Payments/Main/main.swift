import Foundation
import Payments
import ServiceKit

// The router's own settings are checked before anything starts: a bad value (a percentage that
// is not one, a treasury debtor that makes no valid pain.001) is a configuration error, exit 64,
// as a bad flag is — and `--check-config` reports it too. (Options that do not parse are left
// to `ServiceMain.run`, which reports them the usual way.)
if let options = try? ServiceOptions.parse(
    service: PaymentsService.name, upstreams: PaymentsService.upstreams, extraKeys: PaymentsService.settings,
    arguments: Array(CommandLine.arguments.dropFirst()))
{
    do {
        _ = try PaymentsService.paymentsSettings(options: options)
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        exit(64)
    }
}

let status = await ServiceMain.run(
    service: PaymentsService.name, upstreams: PaymentsService.upstreams, extraKeys: PaymentsService.settings
) { options, environment in
    try PaymentsService.build(options: options, environment: environment)
}
exit(status)
