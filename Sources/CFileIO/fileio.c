#define _GNU_SOURCE
#include "cfileio.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sys/uio.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

long leadtrail_pread_nowait(int fd, void *buffer, size_t count, long long offset) {
    struct iovec vector = {buffer, count};
    ssize_t n;
    do {
        n = preadv2(fd, &vector, 1, (off_t)offset, RWF_NOWAIT);
    } while (n < 0 && errno == EINTR);
    return (long)n;
}

int leadtrail_o_noatime(void) {
#ifdef O_NOATIME
    return O_NOATIME;
#else
    return 0;
#endif
}

int leadtrail_name_this_thread(const char *name) {
    char shortened[16];
    strncpy(shortened, name, sizeof shortened - 1);
    shortened[sizeof shortened - 1] = '\0';
    return pthread_setname_np(pthread_self(), shortened);
}

int leadtrail_set_this_thread_niceness(int niceness) {
    return setpriority(PRIO_PROCESS, (id_t)gettid(), niceness) == 0 ? 0 : errno;
}
