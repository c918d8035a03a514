import Bus
import Foundation
import GRDB
import Logging
import Models
import ServiceKit
import Storage

/// A stand-in for a service that is not built yet (the notifier, payments), for harness tests:
/// whatever a test publishes to its intake appears on its feed, so a downstream service's
/// handlers for that feed can be tested with real bus traffic.
public enum StandInService {
    public static let lifecycleTypes: Set<String> = [
        "disclosure.opened", "disclosure.cleared", "disclosure.objection_upheld", "notification.sent", "notification.failed",
        "payment.instructed", "payment.held", "payment.released", "payment.settled", "payment.failed", "clawback.opened",
        "reversal.instructed", "reversal.confirmed",
        // A registry stand-in publishes a profile a test built offline (too big to build through
        // the real registry's facts quickly).
        "merchant.profiled",
    ]

    struct Echo: IntakeApplier {
        let acceptedTypes: Set<String>
        let refusesWhileApplying = false
        let outbox: Outbox

        func validate(_ event: CloudEvent) throws(Rejection) -> CloudEvent { event }

        func apply(_ event: CloudEvent, event _: CloudEvent, db: Database) throws {
            try outbox.append(db, type: event.type, subject: event.subject, id: event.id, data: event.data ?? .object(JSONObject()))
        }
    }

    public static func build(name: String, options: ServiceOptions, environment env: ServiceEnvironment) throws -> BusService {
        let database = try ServiceDatabase(stateDir: options.stateDir, name: name)
        let outbox = Outbox(source: "/bangfu/\(name)", clock: env.clock, maxEventBytes: options.maxMessageBytes)
        let pipeline = IntakePipeline(
            database: database, applier: Echo(acceptedTypes: lifecycleTypes, outbox: outbox), clock: env.clock, logger: env.logger)
        let node = ServiceNode(
            name: name, context: env.context, endpoints: options.endpoints, processor: pipeline, feed: OutboxFeedStore(database: database),
            logger: env.logger)
        return BusService(name: name, node: node, logger: env.logger)
    }
}
