/*===- RuntimeTestTrain.c - A stand-in train step for moma-train's tests -===*\
|*                                                                            *|
|* Part of the moma project.                                                  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * Built into a shared object (moma-test-cpu-train) that test/Runtime's
 * moma-train tests embed as a `cpu-so` module: one kernel with the buffers
 * of a train program (examples/Training.md) and a small, deterministic
 * "model", so that moma-train's loop, metrics, checkpoints, resume and
 * non-finite stop are tested without the compiler. The loss of a target t
 * is (w[t mod n] - 1)^2; the update is momentum SGD whose velocity is a
 * `state` buffer, so a resume that did not restore it would diverge.
 */

#include <math.h>
#include <stdint.h>

/** One optimizer step. Arguments: i32 *ids, i32 *targets,
 *  i32 *target_modality (cells each), i64 *step, f32 *w (n), f32 *velocity
 *  (n, state), f32 *total, f32 *ce, f32 *ce_per_modality (2), f32 *grad (n),
 *  f32 *grad_norm, f32 *lr, i32 *expert_offsets (3), i32 cells, i32 n,
 *  f32 base_lr. The learning rate is base_lr / step; the "experts" count
 *  even and odd ids. */
void train_step(void **args) {
  const int32_t *ids = *(const int32_t **)args[0];
  const int32_t *targets = *(const int32_t **)args[1];
  const int32_t *targetModality = *(const int32_t **)args[2];
  int64_t step = **(const int64_t **)args[3];
  float *w = *(float **)args[4];
  float *velocity = *(float **)args[5];
  float *total = *(float **)args[6];
  float *ce = *(float **)args[7];
  float *perModality = *(float **)args[8];
  float *grad = *(float **)args[9];
  float *gradNorm = *(float **)args[10];
  float *lr = *(float **)args[11];
  int32_t *offsets = *(int32_t **)args[12];
  int32_t cells = *(const int32_t *)args[13];
  int32_t n = *(const int32_t *)args[14];
  float baseLr = *(const float *)args[15];

  double sum = 0, sums[2] = {0, 0};
  int32_t count = 0, counts[2] = {0, 0}, even = 0;
  for (int32_t k = 0; k < n; ++k)
    grad[k] = 0;
  for (int32_t c = 0; c < cells; ++c) {
    even += ids[c] % 2 == 0;
    if (targets[c] < 0)
      continue;
    int32_t k = targets[c] % n;
    double loss = ((double)w[k] - 1) * ((double)w[k] - 1);
    sum += loss;
    ++count;
    if (targetModality[c] == 0 || targetModality[c] == 1) {
      sums[targetModality[c]] += loss;
      ++counts[targetModality[c]];
    }
  }
  for (int32_t c = 0; c < cells; ++c)
    if (targets[c] >= 0) {
      int32_t k = targets[c] % n;
      grad[k] += (float)(2 * ((double)w[k] - 1) / count);
    }
  *total = *ce = (float)(count ? sum / count : 0);
  for (int m = 0; m < 2; ++m)
    perModality[m] = (float)(counts[m] ? sums[m] / counts[m] : 0);
  double norm = 0;
  for (int32_t k = 0; k < n; ++k)
    norm += (double)grad[k] * grad[k];
  *gradNorm = (float)sqrt(norm);
  *lr = baseLr / (float)step;
  for (int32_t k = 0; k < n; ++k) {
    velocity[k] = 0.5f * velocity[k] + grad[k];
    w[k] -= *lr * velocity[k];
  }
  offsets[0] = 0;
  offsets[1] = even;
  offsets[2] = cells;
}
