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
#endif
