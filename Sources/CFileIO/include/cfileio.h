#ifndef CFILEIO_H
#define CFILEIO_H
#include <stddef.h>

/// Reads up to `count` bytes at `offset` only from the page cache (`preadv2` with `RWF_NOWAIT`): never
/// waits for the disk. Returns the bytes read (fewer when only part is cached), or -1 with errno set
/// (EAGAIN: nothing of it is cached; EOPNOTSUPP: the file system cannot tell).
long leadtrail_pread_nowait(int fd, void *buffer, size_t count, long long offset);

/// `O_NOATIME` (a GNU flag Swift's Glibc module does not import): reads through the file descriptor do not
/// update the file's access time. Only the file's owner (or a process with CAP_FOWNER) may set it.
int leadtrail_o_noatime(void);

/// Names the calling thread for the kernel (`pthread_setname_np`, a GNU function Swift's Glibc module does not
/// import): what `top -H`, `perf` and `/proc/PID/task/*/comm` show. At most 15 bytes are kept. Returns 0 or an
/// error number.
int leadtrail_name_this_thread(const char *name);

/// Sets the calling thread's nice value (`setpriority` on its thread id: Linux keeps one per thread), so the
/// scheduler gives it less of a busy CPU than threads at 0. Raising it needs no privilege. Returns 0 or an error
/// number.
int leadtrail_set_this_thread_niceness(int niceness);
#endif
