/* int8 kernels of the operator graph (blob version 2): convolutions, pooling, mean, add.
 * Arithmetic is TFLite's int8 reference (harness/mcu/blob/graph.py): int32 accumulators, per-channel
 * double-rounding requantisation (fb_mbqm), zero points, activation clamps. The DSP build (SXTB16,
 * SMLAD, SMLABB/SMLATT, SMMULR) and the portable build compute the same integers. */
#ifndef FB_KERNELS_CONV_H
#define FB_KERNELS_CONV_H
#include <stdint.h>

/* TFLite MultiplyByQuantizedMultiplier (double rounding), exact for every int32 x, m in [0, 2^31),
 * s in [-31, 30]: SRDHM(x * 2^max(s,0) saturated, m), then a rounding (half away from zero) shift
 * right by max(-s, 0). SRDHM(x, m) = floor((x*m + 2^30) / 2^31) for both signs (its nudge and
 * truncation toward zero combine to that), and m >= 0 rules out its one overflow case. */
static inline int32_t fb_mbqm(int32_t x, int32_t m, int32_t s) {
  if (s > 0) {
    int64_t t = (int64_t)x * ((int64_t)1 << s);
    x = t > 2147483647 ? 2147483647 : t < -2147483647 - 1 ? -2147483647 - 1 : (int32_t)t;
    s = 0;
  }
  int32_t q = (int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31);
  if (s == 0) return q;
  if (s < -30) { /* MEAN folds 1/(H*W) into the shift: exponents up to 63 */
    int64_t mask = ((int64_t)1 << -s) - 1, rem = (int64_t)q & mask, thr = (mask >> 1) + (q < 0);
    return (int32_t)(((int64_t)q >> -s) + (rem > thr));
  }
  uint32_t e = (uint32_t)-s, mask = (1u << e) - 1u;
  int32_t rem = (int32_t)((uint32_t)q & mask), thr = (int32_t)(mask >> 1) + (q < 0);
  return (q >> e) + (rem > thr);
}

/* LiteRT's single-rounding requantisation (FULLY_CONNECTED's int64 path, op flag FB_OPF_SINGLE):
 * (x*m + 2^(30-s)) >> (31-s), saturated to int32. */
static inline int32_t fb_rq_single(int32_t x, int32_t m, int32_t s) {
  int64_t r = ((int64_t)x * m + ((int64_t)1 << (30 - s))) >> (31 - s);
  return r > 2147483647 ? 2147483647 : r < -2147483647 - 1 ? -2147483647 - 1 : (int32_t)r;
}

/* The same integer when e = -s >= 1 and |x| < 2^30 (blob op flag FB_OPF_FAST, checked at load), from
 * em1 = e - 1: SRDHM(x, m) = (2x*m + 2^31) >> 32 (SMMULR), and the rounding shift
 * (q + 2^(e-1) - [q < 0]) >> e equals ((q - [q < 0]) >> em1 + 1) >> 1 without any overflow. */
#if defined(__ARM_FEATURE_DSP) && !defined(FB_PORTABLE)
static inline int32_t fb_mbqm_fast(int32_t x, int32_t m, int32_t em1) {
  int32_t q;
  __asm("smmulr %0, %1, %2" : "=r"(q) : "r"(x * 2), "r"(m));
  return (((q - (int32_t)((uint32_t)q >> 31)) >> em1) + 1) >> 1;
}
#else
static inline int32_t fb_mbqm_fast(int32_t x, int32_t m, int32_t em1) {
  int32_t q = (int32_t)(((int64_t)(x * 2) * m + 0x80000000LL) >> 32);
  return (((q - (int32_t)((uint32_t)q >> 31)) >> em1) + 1) >> 1;
}
#endif

enum { FB_RQ_EXACT = 0, FB_RQ_FAST = 1, FB_RQ_SINGLE = 2 };

/* Per-channel requantisation of one op. */
typedef struct {
  const int32_t *bias;
  const int32_t *rq;      /* per channel (mult, shift); FB_RQ_FAST stores (mult, e - 1 = -shift - 1) */
  int32_t zp_out, lo, hi; /* activation clamp (inside [-128, 127]) */
  int32_t mode;           /* FB_RQ_EXACT, FB_RQ_FAST (op flag FB_OPF_FAST) or FB_RQ_SINGLE */
} fb_crq_t;

/* Shapes of a windowed op: input h x w x c, output oh x ow x oc, kernel/window kh x kw. */
typedef struct {
  int32_t h, w, c, oh, ow, oc, kh, kw, sh, sw, pt, pl, zp_in;
} fb_geom_t;

/* Copy n bytes, both ends 4-byte aligned and n a multiple of 4. */
void fb_copy_words(int8_t *dst, const int8_t *src, int32_t n);

/* Convolution (and dense as a 1x1 convolution on a 1x1 input): w16 in the blob's block order,
 * k4 = KH*KW*Cin rounded up to 4; scratch holds 3*k4 bytes, 4-byte aligned. */
void fb_conv2d_s8(const int8_t *x, const fb_geom_t *g, const int16_t *w16, int32_t k4, const fb_crq_t *q,
                  int8_t *scratch, int8_t *y);
/* Depthwise convolution (multiplier 1); scratch holds the zero-point padded input (blob.h). */
void fb_dwconv2d_s8(const int8_t *x, const fb_geom_t *g, const int16_t *w16, const fb_crq_t *q, int8_t *scratch,
                    int8_t *y);
void fb_maxpool_s8(const int8_t *x, const fb_geom_t *g, int32_t lo, int32_t hi, int8_t *y);
void fb_avgpool_s8(const int8_t *x, const fb_geom_t *g, int32_t lo, int32_t hi, int8_t *y);
/* Mean over n pixels of c channels (TFLite MEAN on H, W). */
void fb_mean_s8(const int8_t *x, int32_t n, int32_t c, int32_t zp_in, int32_t mult, int32_t shift, int32_t zp_out,
                int32_t lo, int32_t hi, int8_t *y);
/* Elementwise add with requantisation; p = left_shift, mult_a, shift_a, mult_b, shift_b, mult_out, shift_out. */
void fb_add_s8(const int8_t *a, const int8_t *b, int32_t n, const int32_t *p, int32_t zp_a, int32_t zp_b,
               int32_t zp_out, int32_t lo, int32_t hi, int8_t *y);
#endif
