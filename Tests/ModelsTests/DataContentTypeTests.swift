import Testing

@testable import Models

/// `datacontenttype`: JSON in any case, with parameters, and a charset only if UTF-8.
@Suite("An event's data content type")
struct DataContentTypeTests {
    private func parse(_ contentType: String) -> RejectionCode? {
        let frame =
            #"{"specversion":"1.0","id":"e1","source":"/tax/xuchang","type":"note.recorded","datacontenttype":"\#(contentType)","data":{}}"#
        do {
            _ = try CloudEvent.parse(Array(frame.utf8))
            return nil
        } catch {
            return error.code
        }
    }

    @Test(arguments: [
        "application/json", "Application/JSON", "application/json; charset=utf-8", "application/json;charset=UTF-8",
        "application/json; charset=\\\"utf-8\\\"", "application/cloudevents+json", "application/vnd.bangfu+json; charset=utf-8",
    ])
    func jsonIsAccepted(_ contentType: String) {
        #expect(parse(contentType) == nil, "\(contentType)")
    }

    @Test(arguments: [
        "text/plain", "application/xml", "application/json; charset=gbk", "application/json; charset=iso-8859-1", "+json",
        "application/jsonp", "application/json;", "application/json; =x",
    ])
    func otherDataIsRefused(_ contentType: String) {
        #expect(parse(contentType) == .invalidEnvelope, "\(contentType)")
    }
}
