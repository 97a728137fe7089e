/* int8 kernels. With the Cortex-M4 DSP extension (__ARM_FEATURE_DSP) the hot loops use
 * SXTB16/SMLAD (arm_acle.h and one hand-scheduled inline-asm loop); otherwise (or with
 * -DFB_PORTABLE) plain C computes the same integers. Always compiled at -O2 (see Makefile). */
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP) && !defined(FB_PORTABLE)
#include <arm_acle.h>
#define FB_DSP 1
#else
#define FB_DSP 0
#endif

#define INLINE static inline __attribute__((always_inline))

/* "The asm reads memory from here on" without a full "memory" clobber (which forces every cached
 * value to be spilled and reloaded around the hot loop). */
struct fb_big {
  char b[1 << 20];
};

void fb_widen_s8(const int8_t *x, int16_t *x16, int n) {
  int ng = n / 4;
#if FB_DSP
  const uint32_t *xw = (const uint32_t *)(const void *)x; /* activation buffers are 4-byte aligned */
  int32_t *o = (int32_t *)(void *)x16;
  for (int g = 0; g < ng; g++) {
    uint32_t v = xw[g];
    o[2 * g] = (int32_t)__sxtb16(v);
    o[2 * g + 1] = (int32_t)__sxtb16(fb_ror(v, 8));
  }
#else
  for (int g = 0; g < ng; g++) {
    x16[4 * g + 0] = x[4 * g + 0];
    x16[4 * g + 1] = x[4 * g + 2];
    x16[4 * g + 2] = x[4 * g + 1];
    x16[4 * g + 3] = x[4 * g + 3];
  }
#endif
}

#if FB_DSP
/* One group of 4 columns for 4 rows: LDRD x, 2 x LDRD w, 8 x SXTB16, 8 x SMLAD. */
#define FB_GROUP                         \
  "ldrd %[xe], %[xo], [%[xp]], #8\n\t"   \
  "ldrd %[w0], %[w1], [%[wp]], #8\n\t"   \
  "sxtb16 %[t], %[w0], ror #8\n\t"       \
  "sxtb16 %[w0], %[w0]\n\t"              \
  "smlad %[a0], %[w0], %[xe], %[a0]\n\t" \
  "smlad %[a0], %[t], %[xo], %[a0]\n\t"  \
  "sxtb16 %[t], %[w1], ror #8\n\t"       \
  "sxtb16 %[w1], %[w1]\n\t"              \
  "smlad %[a1], %[w1], %[xe], %[a1]\n\t" \
  "smlad %[a1], %[t], %[xo], %[a1]\n\t"  \
  "ldrd %[w0], %[w1], [%[wp]], #8\n\t"   \
  "sxtb16 %[t], %[w0], ror #8\n\t"       \
  "sxtb16 %[w0], %[w0]\n\t"              \
  "smlad %[a2], %[w0], %[xe], %[a2]\n\t" \
  "smlad %[a2], %[t], %[xo], %[a2]\n\t"  \
  "sxtb16 %[t], %[w1], ror #8\n\t"       \
  "sxtb16 %[w1], %[w1]\n\t"              \
  "smlad %[a3], %[w1], %[xe], %[a3]\n\t" \
  "smlad %[a3], %[t], %[xo], %[a3]\n\t"

INLINE const int8_t *dot4(const int16_t *x16, const int8_t *w, int ngroups, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int16_t *xp = x16;
  const int8_t *wp = w;
  int pairs = ngroups >> 1;
  if (pairs > 0) {
    int32_t xe, xo, w0, w1, t;
    __asm volatile("1:\n\t" FB_GROUP FB_GROUP
                   "subs %[n], %[n], #1\n\t"
                   "bne 1b\n\t"
                   : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [wp] "+r"(wp),
                     [n] "+r"(pairs), [xe] "=&r"(xe), [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t)
                   : "m"(*(const struct fb_big *)x16), "m"(*(const struct fb_big *)w) /* reads only */
                   : "cc");
  }
  if (ngroups & 1) {
    const int32_t *xw = (const int32_t *)(const void *)xp;
    const uint32_t *ww = (const uint32_t *)(const void *)wp;
    int32_t xe = xw[0], xo = xw[1];
    a0 = __smlad(__sxtb16(ww[0]), xe, __smlad(__sxtb16(fb_ror(ww[0], 8)), xo, a0));
    a1 = __smlad(__sxtb16(ww[1]), xe, __smlad(__sxtb16(fb_ror(ww[1], 8)), xo, a1));
    a2 = __smlad(__sxtb16(ww[2]), xe, __smlad(__sxtb16(fb_ror(ww[2], 8)), xo, a2));
    a3 = __smlad(__sxtb16(ww[3]), xe, __smlad(__sxtb16(fb_ror(ww[3], 8)), xo, a3));
    wp += 16;
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return wp;
}

/* dot4 over a multiple of 4 groups (quads), then the uniform requantisation of the 4 sums inside the
 * same asm block (no spills between the loop and the epilogue):
 *   r = ssat8(((hi(acc*mult) + rnd) >> s) [relu: usat #31] + zp)
 * which equals fb_requant() with lo = max(-128, zp) (relu) or -128. */
#define FB_RQ8(A) \
  "smmla %[" A "], %[" A "], %[xe], %[xo]\n\t" \
  "asr %[" A "], %[" A "], %[w0]\n\t"
#define FB_RQ8_END(A) \
  "add %[" A "], %[" A "], %[w1]\n\t" \
  "ssat %[" A "], #8, %[" A "]\n\t"
#define FB_RELU(A) "usat %[" A "], #31, %[" A "]\n\t"

typedef struct {
  int32_t mult, rnd, s, zp;
} rq_u_t;

INLINE const int8_t *dot4_rq8(const int16_t *x16, const int8_t *w, int quads, int32_t *acc, const rq_u_t *u,
                              int relu) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int16_t *xp = x16;
  const int8_t *wp = w;
  int32_t xe, xo, w0, w1, t;
#define FB_DOT4_OPS                                                                                             \
  : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [wp] "+r"(wp), [n] "+r"(quads), \
    [xe] "=&r"(xe), [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t)                              \
  : "m"(*(const struct fb_big *)x16), "m"(*(const struct fb_big *)w), [mu] "m"(u->mult), [rn] "m"(u->rnd),   \
    [sh] "m"(u->s), [zp] "m"(u->zp)                                                                           \
  : "cc"
  if (relu) {
    __asm volatile("1:\n\t" FB_GROUP FB_GROUP FB_GROUP FB_GROUP
                   "subs %[n], %[n], #1\n\t"
                   "bne 1b\n\t"
                   "ldr %[xe], %[mu]\n\t"
                   "ldr %[xo], %[rn]\n\t"
                   "ldr %[w0], %[sh]\n\t"
                   "ldr %[w1], %[zp]\n\t" FB_RQ8("a0") FB_RELU("a0") FB_RQ8_END("a0") FB_RQ8("a1") FB_RELU("a1")
                       FB_RQ8_END("a1") FB_RQ8("a2") FB_RELU("a2") FB_RQ8_END("a2") FB_RQ8("a3") FB_RELU("a3")
                           FB_RQ8_END("a3") FB_DOT4_OPS);
  } else {
    __asm volatile("1:\n\t" FB_GROUP FB_GROUP FB_GROUP FB_GROUP
                   "subs %[n], %[n], #1\n\t"
                   "bne 1b\n\t"
                   "ldr %[xe], %[mu]\n\t"
                   "ldr %[xo], %[rn]\n\t"
                   "ldr %[w0], %[sh]\n\t"
                   "ldr %[w1], %[zp]\n\t" FB_RQ8("a0") FB_RQ8_END("a0") FB_RQ8("a1") FB_RQ8_END("a1") FB_RQ8("a2")
                       FB_RQ8_END("a2") FB_RQ8("a3") FB_RQ8_END("a3") FB_DOT4_OPS);
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return wp;
}

/* dot4 over a multiple of 4 groups (quads), then (acc + rnd) >> sh saturated to int16 (Monarch factor 1). */
INLINE const int8_t *dot4_sat16(const int16_t *x16, const int8_t *w, int quads, int32_t *acc, const rq_u_t *u) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int16_t *xp = x16;
  const int8_t *wp = w;
  int32_t xe, xo, w0, w1, t;
  __asm volatile("1:\n\t" FB_GROUP FB_GROUP FB_GROUP FB_GROUP
                 "subs %[n], %[n], #1\n\t"
                 "bne 1b\n\t"
                 "ldr %[xo], %[rn]\n\t"
                 "ldr %[w0], %[sh]\n\t"
                 "add %[a0], %[a0], %[xo]\n\t"
                 "asr %[a0], %[a0], %[w0]\n\t"
                 "ssat %[a0], #16, %[a0]\n\t"
                 "add %[a1], %[a1], %[xo]\n\t"
                 "asr %[a1], %[a1], %[w0]\n\t"
                 "ssat %[a1], #16, %[a1]\n\t"
                 "add %[a2], %[a2], %[xo]\n\t"
                 "asr %[a2], %[a2], %[w0]\n\t"
                 "ssat %[a2], #16, %[a2]\n\t"
                 "add %[a3], %[a3], %[xo]\n\t"
                 "asr %[a3], %[a3], %[w0]\n\t"
                 "ssat %[a3], #16, %[a3]\n\t" FB_DOT4_OPS);
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return wp;
}
#define FB_FUSED 1

/* Whole row-block loops in one asm block (Monarch's hot path: 2 x 256 row blocks of 32 columns at
 * n = 1024). State lives in a small struct addressed by one register, so the 12 registers of the
 * inner loop plus the struct pointer are the whole register set (r7 is left to the compiler). */
typedef struct {
  const int16_t *x;    /* 0: widened input of this block */
  const int32_t *bias; /* 4: advances by 4 per row block */
  void *out;           /* 8: int8 outputs (rq8) or int16 column pointer (sat16), advances */
  int32_t quads;       /* 12: groups of 4 columns / 4 */
  int32_t rows4;       /* 16: row blocks left */
  int32_t mult, rnd, s, zp; /* 20..32: requantisation (rq8) / rnd, s for sat16 */
  int32_t stride;      /* 36: bytes between consecutive h rows (sat16) */
} fb_rows_t;

#define FB_ROWS_HEAD                      \
  "2:\n\t"                                \
  "ldr %[t], [%[S], #4]\n\t"              \
  "ldrd %[a0], %[a1], [%[t]], #8\n\t"     \
  "ldrd %[a2], %[a3], [%[t]], #8\n\t"     \
  "str %[t], [%[S], #4]\n\t"              \
  "ldr %[xp], [%[S], #0]\n\t"             \
  "ldr %[n], [%[S], #12]\n\t"             \
  "1:\n\t" FB_GROUP FB_GROUP FB_GROUP FB_GROUP \
  "subs %[n], %[n], #1\n\t"               \
  "bne 1b\n\t"
#define FB_ROWS_TAIL                      \
  "ldr %[t], [%[S], #16]\n\t"             \
  "subs %[t], %[t], #1\n\t"               \
  "str %[t], [%[S], #16]\n\t"             \
  "bne 2b\n\t"
#define FB_ROWS_RQ8_LOAD                  \
  "ldr %[xe], [%[S], #20]\n\t"            \
  "ldr %[xo], [%[S], #24]\n\t"            \
  "ldr %[w0], [%[S], #28]\n\t"            \
  "ldr %[w1], [%[S], #32]\n\t"
#define FB_ROWS_STORE8                    \
  "ldr %[t], [%[S], #8]\n\t"              \
  "strb %[a0], [%[t]], #1\n\t"            \
  "strb %[a1], [%[t]], #1\n\t"            \
  "strb %[a2], [%[t]], #1\n\t"            \
  "strb %[a3], [%[t]], #1\n\t"            \
  "str %[t], [%[S], #8]\n\t"
#define FB_SAT16(A) "add %[" A "], %[" A "], %[xo]\n\t" "asr %[" A "], %[" A "], %[w0]\n\t" "ssat %[" A "], #16, %[" A "]\n\t"
#define FB_ROWS_OPS                                                                                     \
  : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [xp] "=&r"(xp), [n] "=&r"(n),        \
    [xe] "=&r"(xe), [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t), [wp] "+r"(wp)         \
  : [S] "r"(S)                                                                                          \
  : "cc", "memory"

static __attribute__((noinline, unused)) const int8_t *rows_rq8(fb_rows_t *S, const int8_t *wp, int relu) {
  int32_t a0, a1, a2, a3, xe, xo, w0, w1, t;
  const int16_t *xp;
  int32_t n;
  if (relu) {
    __asm volatile(FB_ROWS_HEAD FB_ROWS_RQ8_LOAD FB_RQ8("a0") FB_RELU("a0") FB_RQ8_END("a0") FB_RQ8("a1")
                       FB_RELU("a1") FB_RQ8_END("a1") FB_RQ8("a2") FB_RELU("a2") FB_RQ8_END("a2") FB_RQ8("a3")
                           FB_RELU("a3") FB_RQ8_END("a3") FB_ROWS_STORE8 FB_ROWS_TAIL FB_ROWS_OPS);
  } else {
    __asm volatile(FB_ROWS_HEAD FB_ROWS_RQ8_LOAD FB_RQ8("a0") FB_RQ8_END("a0") FB_RQ8("a1") FB_RQ8_END("a1")
                       FB_RQ8("a2") FB_RQ8_END("a2") FB_RQ8("a3") FB_RQ8_END("a3") FB_ROWS_STORE8 FB_ROWS_TAIL
                           FB_ROWS_OPS);
  }
  return wp;
}

static __attribute__((noinline, unused)) const int8_t *rows_sat16(fb_rows_t *S, const int8_t *wp) {
  int32_t a0, a1, a2, a3, xe, xo, w0, w1, t;
  const int16_t *xp;
  int32_t n;
  __asm volatile(FB_ROWS_HEAD
                 "ldr %[xo], [%[S], #24]\n\t"
                 "ldr %[w0], [%[S], #28]\n\t" FB_SAT16("a0") FB_SAT16("a1") FB_SAT16("a2") FB_SAT16("a3")
                 "ldr %[t], [%[S], #8]\n\t"
                 "ldr %[w1], [%[S], #36]\n\t"
                 "strh %[a0], [%[t]]\n\t"
                 "add %[t], %[t], %[w1]\n\t"
                 "strh %[a1], [%[t]]\n\t"
                 "add %[t], %[t], %[w1]\n\t"
                 "strh %[a2], [%[t]]\n\t"
                 "add %[t], %[t], %[w1]\n\t"
                 "strh %[a3], [%[t]]\n\t"
                 "add %[t], %[t], %[w1]\n\t"
                 "str %[t], [%[S], #8]\n\t" FB_ROWS_TAIL FB_ROWS_OPS);
  (void)xe;
  return wp;
}
#define FB_ROWS 1
#elif defined(__ARM_ARCH_7M__)
/* Armv7-M without DSP (Cortex-M3): one word load per row and SBFX/ASR to pick each signed weight
 * byte, then MLA: about 2 instructions per MAC, which is what the ISA allows without SIMD (every
 * MAC needs its own multiply and its own weight extraction). Weights are 4-byte aligned (blob.h). */
INLINE const int8_t *dot4(const int16_t *x16, const int8_t *w, int ngroups, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int32_t *ww = (const int32_t *)(const void *)w;
  for (int g = 0; g < ngroups; g++, x16 += 4, ww += 4) {
    int32_t xa = x16[0], xc = x16[1], xb = x16[2], xd = x16[3]; /* x0, x2, x1, x3 */
    int32_t r0 = ww[0], r1 = ww[1], r2 = ww[2], r3 = ww[3];
    /* one MLA into each accumulator per weight (no partial sums to add afterwards) */
    a0 += (int8_t)r0 * xa;
    a1 += (int8_t)r1 * xa;
    a2 += (int8_t)r2 * xa;
    a3 += (int8_t)r3 * xa;
    a0 += (int8_t)(r0 >> 8) * xb;
    a1 += (int8_t)(r1 >> 8) * xb;
    a2 += (int8_t)(r2 >> 8) * xb;
    a3 += (int8_t)(r3 >> 8) * xb;
    a0 += (int8_t)(r0 >> 16) * xc;
    a1 += (int8_t)(r1 >> 16) * xc;
    a2 += (int8_t)(r2 >> 16) * xc;
    a3 += (int8_t)(r3 >> 16) * xc;
    a0 += (r0 >> 24) * xd;
    a1 += (r1 >> 24) * xd;
    a2 += (r2 >> 24) * xd;
    a3 += (r3 >> 24) * xd;
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return (const int8_t *)(const void *)ww;
}
#else
INLINE const int8_t *dot4(const int16_t *x16, const int8_t *w, int ngroups, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (int g = 0; g < ngroups; g++, x16 += 4, w += 16) {
    int32_t xa = x16[0], xc = x16[1], xb = x16[2], xd = x16[3]; /* x0, x2, x1, x3 */
    a0 += w[0] * xa + w[1] * xb + w[2] * xc + w[3] * xd;
    a1 += w[4] * xa + w[5] * xb + w[6] * xc + w[7] * xd;
    a2 += w[8] * xa + w[9] * xb + w[10] * xc + w[11] * xd;
    a3 += w[12] * xa + w[13] * xb + w[14] * xc + w[15] * xd;
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return w;
}
#endif
#ifndef FB_FUSED
#define FB_FUSED 0
#endif
#ifndef FB_ROWS
#define FB_ROWS 0
#endif

/* Helium (MVE, Cortex-M55): one VMLADAVA per 16 columns of a row (int8 x int8 summed into the
 * int32 accumulator, exact, so the same integers as every other path). In the 4x4-block weight
 * layout a row's 16 columns sit at byte offsets 0-3, 16-19, 32-35, 48-51 of the next 64 bytes,
 * which one gather load with a constant offset vector reads; the int8 input needs no widening.
 * Column counts that are a multiple of 4 below 16 are predicated off with VCTP. */
#if defined(__ARM_FEATURE_MVE) && !defined(FB_PORTABLE)
#include <arm_mve.h>
#define FB_MVE 1
INLINE const int8_t *dot4_mve(const int8_t *x, const int8_t *w, int ngroups, int32_t *acc) {
  static const uint8_t off_tab[16] = {0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51};
  const uint8x16_t o0 = vld1q_u8(off_tab), o1 = vaddq_n_u8(o0, 4), o2 = vaddq_n_u8(o0, 8), o3 = vaddq_n_u8(o0, 12);
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int8_t *wp = w;
  /* whole 16-column chunks unpredicated (gcc 12 puts a VPST before every predicated instruction) */
  for (int c = ngroups >> 2; c > 0; c--, x += 16, wp += 64) {
    int8x16_t xv = vld1q_s8(x);
    a0 = vmladavaq_s8(a0, vldrbq_gather_offset_s8(wp, o0), xv);
    a1 = vmladavaq_s8(a1, vldrbq_gather_offset_s8(wp, o1), xv);
    a2 = vmladavaq_s8(a2, vldrbq_gather_offset_s8(wp, o2), xv);
    a3 = vmladavaq_s8(a3, vldrbq_gather_offset_s8(wp, o3), xv);
  }
  if (ngroups & 3) { /* 4, 8 or 12 columns left: lanes past them are zeroed and add nothing */
    mve_pred16_t p = vctp8q(4u * (uint32_t)(ngroups & 3));
    int8x16_t xv = vldrbq_z_s8(x, p);
    a0 = vmladavaq_s8(a0, vldrbq_gather_offset_z_s8(wp, o0, p), xv);
    a1 = vmladavaq_s8(a1, vldrbq_gather_offset_z_s8(wp, o1, p), xv);
    a2 = vmladavaq_s8(a2, vldrbq_gather_offset_z_s8(wp, o2, p), xv);
    a3 = vmladavaq_s8(a3, vldrbq_gather_offset_z_s8(wp, o3, p), xv);
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return w + 16 * ngroups;
}
/* The same on the widened int16 input (Monarch's intermediates, matrices without an int8 input):
 * 8 columns per VMLADAVA. x16 holds each group of 4 as [x0, x2, x1, x3], so the weight bytes are
 * gathered in that order (and sign-extended to 16 bits by the gather itself). */
INLINE const int8_t *dot4_mve16(const int16_t *x16, const int8_t *w, int ngroups, int32_t *acc) {
  static const uint16_t off_tab[8] = {0, 2, 1, 3, 16, 18, 17, 19};
  const uint16x8_t o0 = vld1q_u16(off_tab), o1 = vaddq_n_u16(o0, 4), o2 = vaddq_n_u16(o0, 8),
                   o3 = vaddq_n_u16(o0, 12);
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int8_t *wp = w;
  for (int c = ngroups >> 1; c > 0; c--, x16 += 8, wp += 32) {
    int16x8_t xv = vld1q_s16(x16);
    a0 = vmladavaq_s16(a0, vldrbq_gather_offset_s16(wp, o0), xv);
    a1 = vmladavaq_s16(a1, vldrbq_gather_offset_s16(wp, o1), xv);
    a2 = vmladavaq_s16(a2, vldrbq_gather_offset_s16(wp, o2), xv);
    a3 = vmladavaq_s16(a3, vldrbq_gather_offset_s16(wp, o3), xv);
  }
  if (ngroups & 1) { /* one group of 4 left: the upper 4 lanes are zeroed */
    mve_pred16_t p = vctp16q(4u);
    int16x8_t xv = vldrhq_z_s16(x16, p);
    a0 = vmladavaq_s16(a0, vldrbq_gather_offset_z_s16(wp, o0, p), xv);
    a1 = vmladavaq_s16(a1, vldrbq_gather_offset_z_s16(wp, o1, p), xv);
    a2 = vmladavaq_s16(a2, vldrbq_gather_offset_z_s16(wp, o2, p), xv);
    a3 = vmladavaq_s16(a3, vldrbq_gather_offset_z_s16(wp, o3, p), xv);
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return w + 16 * ngroups;
}
#define FB_DOT4X16 dot4_mve16
#endif

/* Requantisation as in fb_requant() (kernels.h), after rq1_t below. */
typedef struct {
  int32_t mult, s, rnd, zp, lo;
} rq1_t;

#if FB_MVE
/* fb_requant() of 4 per-channel outputs at once (VMULH = the high word SMMLA adds, VSHL by a negative
 * count = the arithmetic right shift); 0 if a channel has shift > -2 (the scalar 64-bit path). */
INLINE int rq4_mve(const int32_t *acc, const int32_t *mult, const int32_t *shift, const fb_rq_t *q, int8_t *y) {
  int32x4_t sh = vld1q_s32(shift);
  if (vmaxvq_s32(INT32_MIN, sh) > -2) return 0;
  int32x4_t s = vsubq_s32(vdupq_n_s32(-1), sh);
  int32x4_t rnd = vshlq_s32(vdupq_n_s32(1), vsubq_s32(s, vdupq_n_s32(1)));
  int32x4_t r = vaddq_s32(vmulhq_s32(vld1q_s32(acc), vld1q_s32(mult)), rnd);
  r = vaddq_s32(vshlq_s32(r, vnegq_s32(s)), vdupq_n_s32(q->zp_out));
  r = vminq_s32(vmaxq_s32(r, vdupq_n_s32(q->lo > -128 ? q->lo : -128)), vdupq_n_s32(127));
  vstrbq_s32(y, r);
  return 1;
}
#endif
#if !FB_MVE
#define FB_MVE 0
#define FB_DOT4X16 dot4
#endif

/* Requantisation with one mult/shift hoisted out of the row loop (shift <= -2 checked by caller). */

INLINE int8_t rq1(int32_t acc, const rq1_t *u) {
  int32_t r = (fb_smmla(acc, u->mult, u->rnd) >> u->s) + u->zp;
  r = FB_SSAT(r, 8);
  return (int8_t)(r < u->lo ? u->lo : r);
}

/* Rows of a blocked matrix: 4-row blocks through dot4, column tail and leftover rows in C. */
INLINE void mat_rows(const int16_t *x16, const int8_t *x, const int8_t *w, int in, int out, const fb_rq_t *q,
                     int8_t *y) {
  int ng = in / 4, tail = in % 4, nrb = out / 4;
  const int8_t *wp = w;
  const int8_t *xt = x ? x + 4 * ng : 0;
  const int32_t *bias = q->bias, *mult = q->mult, *shift = q->shift;
  rq1_t u = {q->mult[0], -1 - q->shift[0], 0, q->zp_out, q->lo};
  int uni = q->uniform && q->shift[0] <= -2;
  int done = 0;
  if (uni) u.rnd = 1 << (u.s - 1);
#if FB_FUSED
  if (uni && tail == 0 && ng > 0 && (ng & 3) == 0 && !FB_MVE) {
    rq_u_t f = {u.mult, u.rnd, u.s, u.zp};
    int relu = q->lo > -128; /* lo = zp_out with ReLU */
    for (int rb = 0; rb < nrb; rb++) {
      int32_t acc[4] = {bias[0], bias[1], bias[2], bias[3]};
      wp = dot4_rq8(x16, wp, ng >> 2, acc, &f, relu);
      y[0] = (int8_t)acc[0];
      y[1] = (int8_t)acc[1];
      y[2] = (int8_t)acc[2];
      y[3] = (int8_t)acc[3];
      y += 4;
      bias += 4;
    }
    mult += 4 * nrb;
    shift += 4 * nrb;
    done = nrb;
  }
#endif
  for (int rb = done; rb < nrb; rb++) {
    int32_t acc[4] = {bias[0], bias[1], bias[2], bias[3]};
#if FB_MVE
    if (x)
      wp = dot4_mve(x, wp, ng, acc);
    else
#endif
      wp = FB_DOT4X16(x16, wp, ng, acc);
    if (tail) {
      for (int r = 0; r < 4; r++)
        for (int t = 0; t < tail; t++) acc[r] += wp[r * tail + t] * xt[t];
      wp += 4 * tail;
    }
    if (uni) {
      y[0] = rq1(acc[0], &u);
      y[1] = rq1(acc[1], &u);
      y[2] = rq1(acc[2], &u);
      y[3] = rq1(acc[3], &u);
    } else
#if FB_MVE
      if (!rq4_mve(acc, mult, shift, q, y))
#endif
    {
      y[0] = fb_requant(acc[0], mult[0], shift[0], q);
      y[1] = fb_requant(acc[1], mult[1], shift[1], q);
      y[2] = fb_requant(acc[2], mult[2], shift[2], q);
      y[3] = fb_requant(acc[3], mult[3], shift[3], q);
    }
    y += 4;
    bias += 4;
    mult += 4;
    shift += 4;
  }
  for (int r = 4 * nrb; r < out; r++) { /* leftover rows, row-major (needs the raw input) */
    int32_t acc = *bias++;
    for (int c = 0; c < in; c++) acc += wp[c] * x[c];
    wp += in;
    *y++ = fb_requant(acc, *mult++, *shift++, q);
  }
}

void fb_dense_s8(const int8_t *x, int16_t *x16, const int8_t *w, int in, int out, const fb_rq_t *q, int8_t *y) {
#if !FB_MVE /* the Helium kernel reads the int8 input itself */
  fb_widen_s8(x, x16, in);
#endif
  mat_rows(x16, x, w, in, out, q, y);
}

void fb_mat_x16(const int16_t *x16, const int8_t *w, int in, int out, const fb_rq_t *q, int8_t *y) {
  mat_rows(x16, 0, w, in, out, q, y);
}

void fb_csr_s8(const int8_t *x, const uint32_t *rowptr, const uint16_t *col, const int8_t *val, int out,
               const fb_rq_t *q, int8_t *y) {
  const uint16_t *cp = col;
  const int8_t *vp = val;
  for (int r = 0; r < out; r++) {
    int32_t acc = q->bias[r];
    uint32_t nnz = rowptr[r + 1] - rowptr[r];
    for (; nnz >= 4; nnz -= 4, cp += 4, vp += 4)
      acc += vp[0] * x[cp[0]] + vp[1] * x[cp[1]] + vp[2] * x[cp[2]] + vp[3] * x[cp[3]];
    for (; nnz; nnz--) acc += *vp++ * x[*cp++];
    y[r] = fb_requant(acc, q->mult[r], q->shift[r], q);
  }
}

void fb_bsr4_s8(const int8_t *x, int16_t *x16, const uint32_t *bptr, const uint16_t *bcol, const int8_t *w, int in,
                int out, const fb_rq_t *q, int8_t *y) {
  fb_widen_s8(x, x16, in);
  for (int rb = 0; rb < out / 4; rb++) {
    int r0 = 4 * rb;
    int32_t acc[4] = {q->bias[r0], q->bias[r0 + 1], q->bias[r0 + 2], q->bias[r0 + 3]};
    for (uint32_t k = bptr[rb]; k < bptr[rb + 1]; k++) dot4(x16 + 4 * bcol[k], w + 16 * k, 1, acc);
    for (int r = 0; r < 4; r++) y[r0 + r] = fb_requant(acc[r], q->mult[r0 + r], q->shift[r0 + r], q);
  }
}

void fb_monarch_s8(const int8_t *x, int16_t *x16, int16_t *h16, int k, int p, int q, int s, const int32_t *bias1,
                   int32_t sh1, const int8_t *w1, const int8_t *w2, const fb_rq_t *rq, int8_t *y) {
  static const uint8_t pos4[4] = {0, 2, 1, 3}; /* x16 order inside a group of 4 */
  fb_widen_s8(x, x16, k * p);
  const int8_t *wp = w1;
  int32_t rnd1 = sh1 ? 1 << (sh1 - 1) : 0;
  /* Factor 1: block i maps x[i*p..] to h[i, 0..q); h is stored transposed (h[j, i]) and already in
   * the widened layout that factor 2's kernel reads. */
#if FB_ROWS && !FB_MVE
  if ((p & 15) == 0 && (k & 15) == 0 && q >= 4 && s >= 4) {
    fb_rows_t S1 = {0, bias1, 0, p / 16, 0, 0, rnd1, sh1, 0, 2 * k};
    for (int i = 0; i < k; i++) {
      S1.x = x16 + i * p;
      S1.out = h16 + (i & ~3) + pos4[i & 3];
      S1.rows4 = q / 4;
      wp = rows_sat16(&S1, wp);
    }
    int32_t sft = rq->shift[0];
    if (rq->uniform && sft <= -2) {
      int32_t sv = -1 - sft;
      fb_rows_t S2 = {0, rq->bias, y, k / 16, 0, rq->mult[0], 1 << (sv - 1), sv, rq->zp_out, 0};
      const int8_t *w2p = w2;
      for (int j = 0; j < q; j++) {
        S2.x = h16 + j * k;
        S2.rows4 = s / 4;
        w2p = rows_rq8(&S2, w2p, rq->lo > -128);
      }
      return;
    }
  } else
#endif
  for (int i = 0; i < k; i++) {
    const int16_t *xb = x16 + i * p;
    int16_t *hcol = h16 + (i & ~3) + pos4[i & 3];
    for (int j = 0; j < q; j += 4) {
      int32_t acc[4] = {bias1[0], bias1[1], bias1[2], bias1[3]};
      bias1 += 4;
#if FB_FUSED && !FB_MVE
      if ((p & 15) == 0) {
        rq_u_t f = {0, rnd1, sh1, 0};
        wp = dot4_sat16(xb, wp, p / 16, acc, &f);
        hcol[(j + 0) * k] = (int16_t)acc[0];
        hcol[(j + 1) * k] = (int16_t)acc[1];
        hcol[(j + 2) * k] = (int16_t)acc[2];
        hcol[(j + 3) * k] = (int16_t)acc[3];
        continue;
      }
#endif
      wp = FB_DOT4X16(xb, wp, p / 4, acc);
      hcol[(j + 0) * k] = fb_sat16(acc[0], sh1, rnd1);
      hcol[(j + 1) * k] = fb_sat16(acc[1], sh1, rnd1);
      hcol[(j + 2) * k] = fb_sat16(acc[2], sh1, rnd1);
      hcol[(j + 3) * k] = fb_sat16(acc[3], sh1, rnd1);
    }
  }
  /* Factor 2: block j maps h[j, 0..k) to y[j*s..]. */
  fb_rq_t qb = *rq;
  for (int j = 0; j < q; j++) {
    mat_rows(h16 + j * k, 0, w2 + (uint32_t)j * s * k, k, s, &qb, y + j * s);
    qb.bias += s;
    qb.mult += s;
    qb.shift += s;
  }
}

#if FB_DSP
/* One non-final butterfly level on int16 words: two pairs per step (stride s >= 2), or one pair
 * per word (s == 1). Halfword pairs are packed with PKHBT/PKHTB and reduced with SMUAD. */
static void bfly_level_dsp(const int16_t *ha, int16_t *hb, int n, int s, const uint32_t *tw, int32_t sh,
                           int32_t rnd) {
  if (s == 1) {
    const uint32_t *src = (const uint32_t *)(const void *)ha;
    uint32_t *dst = (uint32_t *)(void *)hb;
    for (int g = 0; g < n / 2; g++) {
      uint32_t t = tw[g], x = src[g];
      int32_t y0 = FB_SSAT((__smuad((int32_t)__sxtb16(t), (int32_t)x) + rnd) >> sh, 16);
      int32_t y1 = FB_SSAT((__smuad((int32_t)__sxtb16(fb_ror(t, 8)), (int32_t)x) + rnd) >> sh, 16);
      dst[g] = ((uint32_t)y0 & 0xFFFFu) | ((uint32_t)y1 << 16);
    }
    return;
  }
  for (int g = 0; g < n; g += 2 * s) {
    const uint32_t *p0 = (const uint32_t *)(const void *)(ha + g), *p1 = (const uint32_t *)(const void *)(ha + g + s);
    uint32_t *q0 = (uint32_t *)(void *)(hb + g), *q1 = (uint32_t *)(void *)(hb + g + s);
    for (int o = 0; o < s / 2; o++) {
      uint32_t a = p0[o], b = p1[o];
      int32_t x0 = (int32_t)((a & 0xFFFFu) | (b << 16));   /* [x_a, x_{a+s}] */
      int32_t x1 = (int32_t)((a >> 16) | (b & 0xFFFF0000u)); /* [x_{a+1}, x_{a+1+s}] */
      uint32_t t0 = tw[0], t1 = tw[1];
      tw += 2;
      int32_t ya = FB_SSAT((__smuad((int32_t)__sxtb16(t0), x0) + rnd) >> sh, 16);
      int32_t yas = FB_SSAT((__smuad((int32_t)__sxtb16(fb_ror(t0, 8)), x0) + rnd) >> sh, 16);
      int32_t yb = FB_SSAT((__smuad((int32_t)__sxtb16(t1), x1) + rnd) >> sh, 16);
      int32_t ybs = FB_SSAT((__smuad((int32_t)__sxtb16(fb_ror(t1, 8)), x1) + rnd) >> sh, 16);
      q0[o] = ((uint32_t)ya & 0xFFFFu) | ((uint32_t)yb << 16);
      q1[o] = ((uint32_t)yas & 0xFFFFu) | ((uint32_t)ybs << 16);
    }
  }
}

/* The final level with one hoisted requantisation (butterfly outputs share a scale): int8 out. */
static void bfly_last_dsp(const int16_t *ha, int n, int s, const uint32_t *tw, const int32_t *bias,
                          const rq1_t *u, int8_t *y) {
  for (int o = 0; o < s; o++) {
    int32_t x0 = (int32_t)(((uint32_t)(uint16_t)ha[o]) | ((uint32_t)ha[o + s] << 16));
    uint32_t t = tw[o];
    y[o] = rq1(__smlad((int32_t)__sxtb16(t), x0, bias[o]), u);
    y[o + s] = rq1(__smlad((int32_t)__sxtb16(fb_ror(t, 8)), x0, bias[o + s]), u);
  }
  (void)n;
}
#endif

void fb_butterfly_s8(const int8_t *x, int16_t *ha, int16_t *hb, int n, int L, int32_t zp_in, const int32_t *sh,
                     const uint32_t *tw, const fb_rq_t *q, int8_t *y) {
  for (int i = 0; i < n; i++) ha[i] = (int16_t)(x[i] - zp_in);
  for (int l = 0; l < L; l++) {
    int s = 1 << l, last = l == L - 1;
    int32_t shl = sh[l], rnd = shl ? 1 << (shl - 1) : 0;
#if FB_DSP
    if (last && q->uniform && q->shift[0] <= -2 && 2 * s == n) {
      int32_t sv = -1 - q->shift[0];
      rq1_t u = {q->mult[0], sv, 1 << (sv - 1), q->zp_out, q->lo};
      bfly_last_dsp(ha, n, s, tw, q->bias, &u, y);
      return;
    }
    if (!last) {
      bfly_level_dsp(ha, hb, n, s, tw, shl, rnd);
      tw += n / 2;
      int16_t *tmp = ha;
      ha = hb;
      hb = tmp;
      continue;
    }
#endif
    for (int g = 0; g < n; g += 2 * s) {
      for (int o = 0; o < s; o++) {
        int a = g + o;
        uint32_t t = *tw++;
        int32_t x0 = ha[a], x1 = ha[a + s];
        int32_t t00 = (int8_t)(t & 0xFFu), t10 = (int8_t)((t >> 8) & 0xFFu);
        int32_t t01 = (int8_t)((t >> 16) & 0xFFu), t11 = (int8_t)(t >> 24);
        if (!last) {
          hb[a] = fb_sat16(t00 * x0 + t01 * x1, shl, rnd);
          hb[a + s] = fb_sat16(t10 * x0 + t11 * x1, shl, rnd);
        } else {
          y[a] = fb_requant(q->bias[a] + t00 * x0 + t01 * x1, q->mult[a], q->shift[a], q);
          y[a + s] = fb_requant(q->bias[a + s] + t10 * x0 + t11 * x1, q->mult[a + s], q->shift[a + s], q);
        }
      }
    }
    int16_t *tmp = ha;
    ha = hb;
    hb = tmp;
  }
}
