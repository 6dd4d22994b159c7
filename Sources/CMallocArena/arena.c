// One malloc arena for the leadtrail executable, set before main so that no thread has its own yet.
//
// With glibc's default of an arena per thread, the daemon's threads that receive and parse appends
// (two event loops, four pool threads) each kept the megabyte buffers of a burst of appends, and
// malloc_trim cannot hand back another arena's top: a daemon at 24 MB grew to 110-120 MB after 200,000
// appends and stayed there. With one arena, the storage engine's malloc_trim after a pause in appends
// brings it back to about 40 MB, at the same append throughput (allocations are per batch, not per event,
// so the arena's lock is seldom contended), measured with leadtrail-load.
#include "cmallocarena.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>

static int arena_limit = 0;

__attribute__((constructor)) static void leadtrail_one_malloc_arena(void) {
    if (mallopt(M_ARENA_MAX, 1) == 1) arena_limit = 1;
}

int leadtrail_malloc_arena_limit(void) { return arena_limit; }
#else
int leadtrail_malloc_arena_limit(void) { return 0; }
#endif
