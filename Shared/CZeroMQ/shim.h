#ifndef BANGFU_CZEROMQ_SHIM_H
#define BANGFU_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
