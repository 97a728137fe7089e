/* int8 kernels. Every output is acc = bias + sum(w * x) in int32, then fb_requant().
 * Monarch and butterfly keep their intermediate activations in int16 with a power-of-two scale
 * (one shift per factor), so only the layer output is requantised per channel. */
#ifndef FB_KERNELS_H
#define FB_KERNELS_H
#include <stdint.h>

typedef struct {
  const int32_t *bias, *mult, *shift;
  int32_t zp_out, lo, hi;
  int32_t uniform; /* every channel has the same mult/shift (layer flag FB_FLAG_UNIFORM_RQ) */
} fb_rq_t;

/* Rotate right (arm_acle.h of GCC 12 has no __ror; gcc folds this into SXTB16's ROR operand). */
static inline uint32_t fb_ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

#if defined(__ARM_FEATURE_DSP) && !defined(FB_PORTABLE)
/* ra + high word of a*b (SMMLA): exact, one instruction. */
static inline int32_t fb_smmla(int32_t a, int32_t b, int32_t ra) {
  int32_t r;
  __asm("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(ra));
  return r;
}
#define FB_SSAT(x, n) __builtin_arm_ssat((x), (n))
#else
static inline int32_t fb_smmla(int32_t a, int32_t b, int32_t ra) { return ra + (int32_t)(((int64_t)a * b) >> 32); }
#define FB_SSAT(x, n) ((x) < -(1 << ((n)-1)) ? -(1 << ((n)-1)) : (x) > (1 << ((n)-1)) - 1 ? (1 << ((n)-1)) - 1 : (x))
#endif

/* TFLite single-rounding requantisation: r = (acc*mult + 2^(ts-1)) >> ts with ts = 31 - shift,
 * then + zp_out and clamp. For shift <= -2 (ts >= 33) the rounding constant only touches the high
 * word of the product: r = (hi(acc*mult) + 2^(ts-33)) >> (ts-32), the same integer in 32-bit ops. */
static inline int8_t fb_requant(int32_t acc, int32_t mult, int32_t shift, const fb_rq_t *q) {
  int32_t r;
  if (__builtin_expect(shift <= -2, 1)) {
    int32_t s = -1 - shift;
    r = (fb_smmla(acc, mult, 1 << (s - 1)) >> s) + q->zp_out;
    r = FB_SSAT(r, 8);
  } else {
    int ts = 31 - shift;
    int64_t r64 = (((int64_t)acc * mult + ((int64_t)1 << (ts - 1))) >> ts) + q->zp_out;
    r = r64 < -128 ? -128 : r64 > 127 ? 127 : (int32_t)r64;
  }
  if (r < q->lo) r = q->lo;
  return (int8_t)r;
}

/* Rounding right shift then saturation to int16 (intermediates of Monarch and butterfly). */
static inline int16_t fb_sat16(int32_t acc, int32_t sh, int32_t rnd) {
  int32_t r = (acc + rnd) >> sh;
  return (int16_t)FB_SSAT(r, 16);
}

/* Widen int8 x into the x16 layout the kernels read: per group of 4, halfwords [x0,x2,x1,x3]. */
void fb_widen_s8(const int8_t *x, int16_t *x16, int n);
/* Dense (out x in) int8 matrix in 4x4-block order (see blob.h); x16 is scratch for 4*ceil(in/4). */
void fb_dense_s8(const int8_t *x, int16_t *x16, const int8_t *w, int in, int out, const fb_rq_t *q, int8_t *y);
/* Same on an already widened input (in % 4 == 0), e.g. Monarch's int16 intermediate. */
void fb_mat_x16(const int16_t *x16, const int8_t *w, int in, int out, const fb_rq_t *q, int8_t *y);
void fb_csr_s8(const int8_t *x, const uint32_t *rowptr, const uint16_t *col, const int8_t *val, int out,
               const fb_rq_t *q, int8_t *y);
void fb_bsr4_s8(const int8_t *x, int16_t *x16, const uint32_t *bptr, const uint16_t *bcol, const int8_t *w, int in,
                int out, const fb_rq_t *q, int8_t *y);
/* Monarch: k blocks (q x p) then q blocks (s x k); all of k, p, q, s divisible by 4. */
void fb_monarch_s8(const int8_t *x, int16_t *x16, int16_t *h16, int k, int p, int q, int s, const int32_t *bias1,
                   int32_t sh1, const int8_t *w1, const int8_t *w2, const fb_rq_t *rq, int8_t *y);
/* Butterfly: L levels of n/2 2x2 twiddles (bytes t00,t10,t01,t11), int16 between levels. */
void fb_butterfly_s8(const int8_t *x, int16_t *ha, int16_t *hb, int n, int L, int32_t zp_in, const int32_t *sh,
                     const uint32_t *tw, const fb_rq_t *q, int8_t *y);
#endif
