/*===- RuntimeTestThreads.c - A CPU module that takes a thread count -----===*\
|*                                                                            *|
|* Part of the moma project.                                                  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * Built into a shared object (moma-test-cpu-threads) that the runtime tests
 * embed as a `cpu-so` module. Like momac's modules it exports
 * moma_cpu_set_threads, which the CPU device calls with the session's thread
 * count; this one records the count and its calls instead of setting
 * OpenMP's, and a kernel reports them.
 */

#include <stdint.h>

static int32_t lastThreads = -1;
static int32_t setCalls = 0;

/** Records the thread count \p n. */
void moma_cpu_set_threads(int n) {
  lastThreads = n;
  ++setCalls;
}

/** Writes the last thread count and the number of moma_cpu_set_threads
 *  calls so far. Arguments: i32 *out (2 elements). */
void report_threads(void **args) {
  int32_t *out = *(int32_t **)args[0];
  out[0] = lastThreads;
  out[1] = setCalls;
}
