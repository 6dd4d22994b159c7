#ifndef CMALLOCARENA_H
#define CMALLOCARENA_H

/// The arena limit this process set for glibc's malloc before main ran (1), or 0 where there is no glibc.
int leadtrail_malloc_arena_limit(void);

#endif
