import Testing

@testable import Bus

/// The intake's batch latencies in `status`: nearest-rank percentiles over a fixed ring.
@Suite struct LatencyWindowTests {
    @Test func percentilesAreNearestRankOverTheWindow() {
        var w = LatencyWindow()
        #expect(w.percentile(50) == nil)
        #expect(w.max == nil)
        for us in 1...100 { w.record(microseconds: UInt64(us)) }
        #expect(w.percentile(50) == 50)
        #expect(w.percentile(99) == 99)
        #expect(w.percentile(100) == 100)
        #expect(w.max == 100)
        #expect(w.count == 100)
    }

    @Test func theRingKeepsOnlyTheLastBatches() {
        var w = LatencyWindow()
        // A slow start, then a long fast stretch: the window forgets the slow batches.
        for _ in 0..<10 { w.record(microseconds: 1_000_000) }
        for _ in 0..<LatencyWindow.capacity { w.record(microseconds: 500) }
        #expect(w.max == 500)
        #expect(w.percentile(99) == 500)
        #expect(w.count == 10 + LatencyWindow.capacity)
    }
}
