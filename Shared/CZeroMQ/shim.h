#ifndef BANGFU_CZEROMQ_SHIM_H
#define BANGFU_CZEROMQ_SHIM_H
#include <zmq.h>

/* Names the calling thread (Linux keeps the first 15 bytes), as `ps -L` and `top -H` show it. */
#if defined(__linux__)
#include <sys/prctl.h>
static inline void bangfu_name_this_thread(const char *name) { prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
#else
static inline void bangfu_name_this_thread(const char *name) { (void)name; }
#endif

/* A descriptor that becomes readable when process `pid` (any process, not only a child) has
   ended; -1 with errno set when it cannot be had (ESRCH: already gone). Linux 5.3 and later. */
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
static inline int bangfu_pidfd_open(int pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}
#else
#include <errno.h>
static inline int bangfu_pidfd_open(int pid) { (void)pid; errno = ENOSYS; return -1; }
#endif
#endif
