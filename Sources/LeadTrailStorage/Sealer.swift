import Foundation

/// An empty segment file made ahead of the next rotation: its directory entry is already
/// durable, so rotating costs the writer one header write and no sync of its own.
struct SpareSegment {
    var id: UInt64
    var path: String
    var fd: Int32
}

extension EventStore {
    /// A segment the writer has moved on from, waiting for its footer, and who waits for that (an explicit rotate).
    struct SealJob {
        var segment: Segment
        var completion: (@Sendable (Result<SealedSegment?, StoreError>) -> Void)?
    }

    /// Starts the thread that seals the segments the writer rolls away from and keeps a spare segment ready.
    ///
    /// Sealing sorts the segment's indexes and writes and syncs its footer, renames it and syncs the directory:
    /// tens of ms for a full segment. On the writer's path that stalled every acknowledgement waiting behind it;
    /// here appends go on into the next segment meanwhile. Until its seal finishes, a rolled segment is read like
    /// the active one (from its in-memory indexes) and is not tiered; recovery seals one that a crash left open.
    func startSealer() {
        sealerSignal.withLock {
            sealerStopping = false
            sealerFinished = false
        }
        startThread(named: "leadtrail-sealer", priority: .background) { [self] in sealerLoop() }
    }

    /// Rolled segments that may wait for the sealer at once; a rotation past this waits until one is sealed.
    /// Each unsealed segment keeps its indexes in memory, and the sealer runs below the append path
    /// (``ThreadPriority/background``): on a machine the appends keep busy it could otherwise fall behind without
    /// bound. Under a full load of four producers on two cores a seal took 30-125 ms and a segment rolled every
    /// 300 ms, so the bound is for a machine worse off than that.
    static let maximumPendingSeals = 4

    /// Waits (writer thread) while ``maximumPendingSeals`` rolled segments wait for a running sealer; returns
    /// how long, in ms.
    func waitForSealerToCatchUp() -> Int64 {
        let started = monotonicMilliseconds()
        sealerSignal.withLock {
            while sealJobs.count >= Self.maximumPendingSeals && !sealerStopping && !sealerFinished {
                sealerSignal.wait(seconds: 0.1)
            }
        }
        return monotonicMilliseconds() - started
    }

    /// Queues a rolled segment for sealing.
    func enqueueSeal(_ job: SealJob) {
        sealerSignal.withLock {
            sealJobs.append(job)
            sealerSignal.signalAll()
        }
    }

    func sealerLoop() {
        while true {
            if !sealerSignal.withLock({ sealerStopping }) { prepareSpareSegment() }
            let (job, stop): (SealJob?, Bool) = sealerSignal.withLock {
                if sealJobs.isEmpty && !sealerStopping { sealerSignal.wait(seconds: 1) }
                return (sealJobs.first, sealerStopping && sealJobs.isEmpty)
            }
            if let job {
                let result = runSeal(job.segment)
                sealerSignal.withLock {
                    sealJobs.removeFirst()
                    sealerSignal.signalAll()
                }
                job.completion?(result)
                continue
            }
            if stop { break }
        }
        sealerSignal.withLock {
            sealerFinished = true
            sealerSignal.signalAll()
        }
    }

    /// Seals one rolled segment. A failed footer write leaves it unsealed: it is still read from memory and
    /// recovery seals it at the next start.
    func runSeal(_ segment: Segment) -> Result<SealedSegment?, StoreError> {
        if let failure = stateLock.withLock({ fatalError_ }) { return .failure(failure) }
        do throws(StoreError) {
            try seal(segment)
        } catch {
            logger.error("could not seal a segment; it stays readable and is sealed at the next start",
                metadata: ["segment.id": "\(segment.id)", "error": "\(error.message)"])
            return .failure(error)
        }
        return .success(SealedSegment(segmentID: segment.id, firstSeq: segment.firstSeq, lastSeq: segment.lastSeq, events: segment.count))
    }

    /// Waits until every queued seal is done, then stops the sealer and removes the spare segment.
    func stopSealer() {
        sealerSignal.withLock {
            sealerStopping = true
            sealerSignal.signalAll()
            while !sealerFinished { sealerSignal.wait(seconds: 0.1) }
        }
        discardSpareSegment()
    }

    /// Removes the spare segment, if any (at close; tests use it to make a rotation create its segment itself).
    func discardSpareSegment() {
        spareLock.withLock {
            guard let spare = spareSegment else { return }
            spareSegment = nil
            removeSpareFile(spare)
            try? io.syncDirectory(hotDirectory)
        }
    }

    /// The id the next segment gets: one above every segment id in use, archived ones included (ids are never
    /// reused, and a tiering run may take the newest sealed segment out of `segments`).
    func nextSegmentID() -> UInt64 {
        stateLock.withLock {
            max(segments.map(\.id).max() ?? 0, coldCatalog.members.map(\.member.segmentID).max() ?? 0) + 1
        }
    }

    /// Creates the spare segment when there is none: an empty `.open` file with its directory entry synced.
    /// Recovery removes an empty `.open` file, and `verify` passes over one.
    func prepareSpareSegment() {
        spareLock.withLock {
            guard spareSegment == nil, stateLock.withLock({ fatalError_ == nil }) else { return }
            let id = nextSegmentID()
            do throws(StoreError) {
                let (path, fd) = try createSegmentFile(id: id)
                spareSegment = SpareSegment(id: id, path: path, fd: fd)
            } catch {
                // Not fatal: the next rotation creates its segment itself.
                logger.warning("could not create a spare segment", metadata: ["error": "\(error.message)"])
            }
        }
    }

    /// Takes the spare segment for id `id` (the caller holds `spareLock`); removes a spare with another id.
    func takeSpareSegment(id: UInt64) -> SpareSegment? {
        guard let spare = spareSegment else { return nil }
        spareSegment = nil
        if spare.id == id { return spare }
        removeSpareFile(spare)
        return nil
    }

    /// Creates segment file `id` (`.open`), runs `setUp` on it and syncs the directory; removes the file when a
    /// step fails.
    func createSegmentFile(id: UInt64, setUp: (Int32) throws(StoreError) -> Void = { _ in }) throws(StoreError) -> (path: String, fd: Int32) {
        let path = hotDirectory + "/" + Segment.fileName(id: id, sealed: false)
        let fd = try io.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o644)
        do throws(StoreError) {
            CrashPoint.createAfterOpen.reached()
            try setUp(fd)
            try io.syncDirectory(hotDirectory)
        } catch {
            io.close(fd)
            try? io.unlink(path)
            throw error
        }
        return (path, fd)
    }

    func removeSpareFile(_ spare: SpareSegment) {
        io.close(spare.fd)
        try? io.unlink(spare.path)
    }
}
