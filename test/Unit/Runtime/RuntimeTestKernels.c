/*===- RuntimeTestKernels.c - CPU kernels for the runtime tests ----------===*\
|*                                                                            *|
|* Part of the moma project.                                                  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * Built into a shared object (moma-test-cpu-kernels) whose bytes the runtime
 * tests embed in `cpu` programs as a `cpu-so` module. The kernels follow the
 * runtime's CPU ABI: `void NAME(void **args)`, where args[i] points at the
 * value of argument i (a buffer is a pointer into the arena), called once per
 * launch, looping over the whole iteration space.
 */

#include <stdint.h>

/** c[i] = a[i] + b[i] for i < n. Arguments: f32 *a, f32 *b, f32 *c, i32 n. */
void vadd(void **args) {
  const float *a = *(const float **)args[0];
  const float *b = *(const float **)args[1];
  float *c = *(float **)args[2];
  int32_t n = *(const int32_t *)args[3];
  for (int32_t i = 0; i < n; ++i)
    c[i] = a[i] + b[i];
}

/** y[i] = alpha * x[i] + (float)beta for i < n. Arguments: f32 *x, f32 *y,
 *  f32 alpha, i64 n, f64 beta. */
void scale(void **args) {
  const float *x = *(const float **)args[0];
  float *y = *(float **)args[1];
  float alpha = *(const float *)args[2];
  int64_t n = *(const int64_t *)args[3];
  double beta = *(const double *)args[4];
  for (int64_t i = 0; i < n; ++i)
    y[i] = alpha * x[i] + (float)beta;
}

/** Counts its calls into *counter (i64). Arguments: i64 *counter. */
void count_calls(void **args) {
  int64_t *counter = *(int64_t **)args[0];
  ++*counter;
}
