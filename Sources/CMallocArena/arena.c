// One malloc arena for the leadtrail executable, set before main so that no thread has its own yet.
//
// With glibc's default of an arena per thread, the daemon's threads that receive and parse appends
// (two event loops, four pool threads) each kept the megabyte buffers of a burst of appends, and
// malloc_trim cannot hand back another arena's top: a daemon at 24 MB grew to 110-120 MB after 200,000
// appends and stayed there. With one arena, the storage engine's malloc_trim after a pause in appends
// brings it back to about 40 MB, at the same append throughput (allocations are per batch, not per event,
// so the arena's lock is seldom contended), measured with leadtrail-load.
//
// Buffers of a batch's size (a megabyte or two: the frame, the prepared events, the group written) come
// from the arena, not from fresh mappings, and the arena keeps up to 64 MB of free memory at its top
// instead of handing it back at once. glibc's default sends such buffers to mmap, or trims the top as
// soon as a few megabytes are free, so every batch faulted its buffers in again page by page (the
// kernel zeroing each page): a quarter of the CPU time of validating a batch. Memory is still handed
// back: the storage engine calls malloc_trim once appends pause, and after a long scan. Over 200,000
// appends from 4 producers (perf stat -e page-faults,task-clock on the daemon): 46,828 page faults and
// 2.04 s of CPU before, 20,955 and 1.66 s after; the resident set around a burst of appends at 10 million
// events did not grow (see Operations.md).
#include "cmallocarena.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>

static int arena_limit = 0;

__attribute__((constructor)) static void leadtrail_one_malloc_arena(void) {
    if (mallopt(M_ARENA_MAX, 1) == 1) arena_limit = 1;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int leadtrail_malloc_arena_limit(void) { return arena_limit; }
#else
int leadtrail_malloc_arena_limit(void) { return 0; }
#endif
