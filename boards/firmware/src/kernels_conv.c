/* Convolution, depthwise, pooling, mean and add kernels (blob version 2; layouts in blob.h).
 * Convolutions run as partial im2col: one output pixel's patch is widened to int16 in the
 * [x0, x2, x1, x3] order of SXTB16 and multiplied by 4 output channels at a time against int16
 * weights (SMLAD on pairs; 11 instructions per 16 MACs in the asm loop), with the requantisation
 * fused into the same asm where the op allows it (gemv_rq). Depthwise 3x3 reads a zero-point padded
 * copy of the input, 4 channels per SXTB16 pair and SMLABB/SMLATT (dw3x3_rq). Always compiled at -O2;
 * the naked asm functions save and restore every register they use (r7 included). */
#include "kernels_conv.h"
#include "kernels_conv_mve.h"

#if defined(__ARM_FEATURE_DSP) && !defined(FB_PORTABLE)
#include <arm_acle.h>
#define FB_DSP 1
#else
#define FB_DSP 0
#endif

#define INLINE static inline __attribute__((always_inline))

static inline uint32_t ror8(uint32_t x) { return (x >> 8) | (x << 24); }

/* n words of int8 (4-byte aligned) to int16 in [x0, x2, x1, x3] order per word. */
static void widen_words(const int8_t *src, int16_t *dst, int32_t n) {
  const uint32_t *s = (const uint32_t *)(const void *)src;
#if FB_DSP
  uint32_t *d = (uint32_t *)(void *)dst;
  for (int32_t i = 0; i < n; i++) {
    uint32_t v = s[i];
    d[2 * i] = __sxtb16(v);
    d[2 * i + 1] = __sxtb16(ror8(v));
  }
#else
  for (int32_t i = 0; i < n; i++) {
    const int8_t *b = (const int8_t *)(s + i);
    dst[4 * i] = b[0];
    dst[4 * i + 1] = b[2];
    dst[4 * i + 2] = b[1];
    dst[4 * i + 3] = b[3];
  }
#endif
}

static void fill_words(int16_t *dst, int32_t n, int32_t v) {
  uint32_t pair = ((uint32_t)v & 0xFFFFu) | ((uint32_t)v << 16);
  uint32_t *d = (uint32_t *)(void *)dst;
  for (int32_t i = 0; i < 2 * n; i++) d[i] = pair;
}

#if FB_DSP
/* blocks x 16 bytes with LDM/STM (3 instructions per 16 bytes). */
__attribute__((naked, noinline)) static void copy16(uint32_t *d, const uint32_t *s, int32_t blocks) {
  __asm volatile(
      "push {r4-r7}\n\t"
      "1:\n\t"
      "ldm r1!, {r4-r7}\n\t"
      "stm r0!, {r4-r7}\n\t"
      "subs r2, r2, #1\n\t"
      "bne 1b\n\t"
      "pop {r4-r7}\n\t"
      "bx lr\n\t");
}
#endif

void fb_copy_words(int8_t *dst, const int8_t *src, int32_t n) {
  uint32_t *d = (uint32_t *)(void *)dst;
  const uint32_t *s = (const uint32_t *)(const void *)src;
  int32_t nw = n >> 2, i = 0;
#if FB_DSP
  if (nw >= 4) {
    copy16(d, s, nw >> 2);
    i = nw & ~3;
  }
#endif
  for (; i < nw; i++) d[i] = s[i];
}

#if FB_DSP
/* acc[0..3] += 4 rows of w16 times x16 over n groups of 4 columns; returns w16 after them.
 * Naked: the loop needs 14 registers (r0-r12, lr) in a fixed order for LDM. */
__attribute__((naked, noinline)) static const int16_t *dot4_w16(const int16_t *x16, const int16_t *w16, int32_t n,
                                                                int32_t *acc) {
#define FB_W16_GROUP                \
  "ldrd r8, r9, [r0], #8\n\t"       \
  "ldm r1!, {r10, r11, r12, lr}\n\t" \
  "smlad r3, r10, r8, r3\n\t"       \
  "smlad r4, r11, r8, r4\n\t"       \
  "smlad r5, r12, r8, r5\n\t"       \
  "smlad r6, lr, r8, r6\n\t"        \
  "ldm r1!, {r10, r11, r12, lr}\n\t" \
  "smlad r3, r10, r9, r3\n\t"       \
  "smlad r4, r11, r9, r4\n\t"       \
  "smlad r5, r12, r9, r5\n\t"       \
  "smlad r6, lr, r9, r6\n\t"
  __asm volatile(
      "push {r3-r11, lr}\n\t"
      "ldm r3, {r3-r6}\n\t"
      "tst r2, #1\n\t"
      "beq 2f\n\t" FB_W16_GROUP
      "2:\n\t"
      "lsrs r2, r2, #1\n\t"
      "beq 3f\n\t"
      "1:\n\t" FB_W16_GROUP FB_W16_GROUP
      "subs r2, r2, #1\n\t"
      "bne 1b\n\t"
      "3:\n\t"
      "ldr r7, [sp]\n\t"
      "stm r7, {r3-r6}\n\t"
      "mov r0, r1\n\t"
      "pop {r3-r11, pc}\n\t");
}

typedef struct {
  const int32_t *bias; /* 0: advances by 4 per row block */
  const int32_t *rq;   /* 4: (mult, e - 1) pairs, advances likewise */
  int8_t *y;           /* 8 */
  int32_t zp2;         /* 12: 2 * zp_out + 1 */
  int32_t ng;          /* 16: groups of 4 patch columns */
  int32_t blocks;      /* 20: row blocks left */
  const int16_t *x16;  /* 24: the widened patch */
} gemv_args_t;

/* All output channels of one pixel with the requantisation fused (FB_OPF_FAST, no activation clamp
 * inside int8, Cout a multiple of 4): dot4_w16's loop per block of 4 rows, then 8 instructions per
 * output as in dw3x3_rq. */
__attribute__((naked, noinline)) static void gemv_rq(const int16_t *w16, gemv_args_t *a) {
#define FB_GEMV_RQ(A)                   \
  "ldrd r11, r12, [r8], #8\n\t"        \
  "lsl " A ", " A ", #1\n\t"           \
  "smmulr lr, " A ", r11\n\t"          \
  "sub " A ", lr, lr, lsr #31\n\t"     \
  "asr " A ", " A ", r12\n\t"          \
  "add " A ", " A ", r10\n\t"          \
  "ssat " A ", #8, " A ", asr #1\n\t"  \
  "strb " A ", [r9], #1\n\t"
  __asm volatile(
      "push {r4-r11, lr}\n\t"
      "mov r7, r1\n\t"
      "mov r1, r0\n\t"
      "2:\n\t"
      "ldr r0, [r7, #24]\n\t"
      "ldr r2, [r7, #0]\n\t"
      "ldm r2!, {r3-r6}\n\t"
      "str r2, [r7, #0]\n\t"
      "ldr r2, [r7, #16]\n\t"
      "tst r2, #1\n\t"
      "beq 3f\n\t" FB_W16_GROUP
      "3:\n\t"
      "lsrs r2, r2, #1\n\t"
      "beq 4f\n\t"
      "1:\n\t" FB_W16_GROUP FB_W16_GROUP
      "subs r2, r2, #1\n\t"
      "bne 1b\n\t"
      "4:\n\t"
      "ldr r8, [r7, #4]\n\t"
      "ldr r9, [r7, #8]\n\t"
      "ldr r10, [r7, #12]\n\t" FB_GEMV_RQ("r3") FB_GEMV_RQ("r4") FB_GEMV_RQ("r5") FB_GEMV_RQ("r6")
      "str r8, [r7, #4]\n\t"
      "str r9, [r7, #8]\n\t"
      "ldr r2, [r7, #20]\n\t"
      "subs r2, r2, #1\n\t"
      "str r2, [r7, #20]\n\t"
      "bne 2b\n\t"
      "pop {r4-r11, pc}\n\t");
}
#else
static const int16_t *dot4_w16(const int16_t *x16, const int16_t *w16, int32_t n, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (int32_t g = 0; g < n; g++, x16 += 4, w16 += 16) {
    int32_t x0 = x16[0], x2 = x16[1], x1 = x16[2], x3 = x16[3];
    a0 += w16[0] * x0 + w16[1] * x2 + w16[8] * x1 + w16[9] * x3;
    a1 += w16[2] * x0 + w16[3] * x2 + w16[10] * x1 + w16[11] * x3;
    a2 += w16[4] * x0 + w16[5] * x2 + w16[12] * x1 + w16[13] * x3;
    a3 += w16[6] * x0 + w16[7] * x2 + w16[14] * x1 + w16[15] * x3;
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return w16;
}
#endif

INLINE int32_t clamp8(int32_t r, int32_t lo, int32_t hi) {
  r = r < lo ? lo : r;
  return r > hi ? hi : r;
}

INLINE int8_t rq_fast(int32_t acc, int32_t m, int32_t em1, int32_t zp, int32_t lo, int32_t hi) {
  return (int8_t)clamp8(fb_mbqm_fast(acc, m, em1) + zp, lo, hi);
}

INLINE int8_t rq_exact(int32_t acc, int32_t m, int32_t s, int32_t zp, int32_t lo, int32_t hi, int32_t mode) {
  int32_t r = mode == FB_RQ_SINGLE ? fb_rq_single(acc, m, s) : fb_mbqm(acc, m, s);
  r = r < -256 ? -256 : r > 256 ? 256 : r; /* keeps r + zp in int32 */
  return (int8_t)clamp8(r + zp, lo, hi);
}

/* All output channels of one pixel from its widened patch. */
static void gemv_pixel(const int16_t *x16, const int16_t *w16, int32_t ngroups, int32_t oc, const fb_crq_t *q,
                       int8_t *y) {
#if FB_DSP
  if (q->mode == FB_RQ_FAST && q->lo == -128 && q->hi == 127 && (oc & 3) == 0 && ngroups > 0) {
    gemv_args_t a = {q->bias, q->rq, y, 2 * q->zp_out + 1, ngroups, oc / 4, x16};
    gemv_rq(w16, &a);
    return;
  }
#endif
  const int16_t *wp = w16;
  const int32_t *bias = q->bias, *rq = q->rq;
  int32_t zp = q->zp_out, lo = q->lo, hi = q->hi;
  for (int32_t r0 = 0; r0 < oc; r0 += 4) {
    int32_t acc[4] = {bias[r0], bias[r0 + 1], bias[r0 + 2], bias[r0 + 3]};
    wp = dot4_w16(x16, wp, ngroups, acc);
    int32_t nr = oc - r0 < 4 ? oc - r0 : 4;
    if (q->mode == FB_RQ_FAST) {
      for (int32_t r = 0; r < nr; r++) y[r0 + r] = rq_fast(acc[r], rq[2 * (r0 + r)], rq[2 * (r0 + r) + 1], zp, lo, hi);
    } else {
      for (int32_t r = 0; r < nr; r++)
        y[r0 + r] = rq_exact(acc[r], rq[2 * (r0 + r)], rq[2 * (r0 + r) + 1], zp, lo, hi, q->mode);
    }
  }
}

void fb_conv2d_s8(const int8_t *x, const fb_geom_t *g, const int16_t *w16, int32_t k4, const fb_crq_t *q,
                  int8_t *scratch, int8_t *y) {
#if FB_CONV_MVE
  if (fb_mve_conv2d_s8(x, g, w16, k4, q, scratch, y)) return;
#endif
  int32_t c = g->c, kk = g->kh * g->kw * c, ng = k4 / 4;
  int8_t *patch = scratch;
  int16_t *x16 = (int16_t *)(void *)(scratch + k4);
  int aligned = (c & 3) == 0;
  int pointwise = aligned && g->kh == 1 && g->kw == 1 && g->pt == 0 && g->pl == 0;
  for (int32_t i = kk; i < k4; i++) patch[i] = 0;
  for (int32_t oy = 0; oy < g->oh; oy++) {
    for (int32_t ox = 0; ox < g->ow; ox++) {
      int32_t iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
      if (pointwise) {
        widen_words(x + (iy0 * g->w + ix0) * c, x16, c >> 2);
      } else if (aligned) { /* taps of whole words: widen straight from the input */
        int16_t *d = x16;
        for (int32_t ky = 0; ky < g->kh; ky++) {
          int32_t iy = iy0 + ky;
          for (int32_t kx = 0; kx < g->kw; kx++, d += c) {
            int32_t ix = ix0 + kx;
            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) fill_words(d, c >> 2, g->zp_in);
            else widen_words(x + (iy * g->w + ix) * c, d, c >> 2);
          }
        }
      } else { /* 1-3 (or any non-multiple of 4) input channels: gather kernel rows as byte runs */
        int8_t *d = patch;
        int32_t run = g->kw * c, zp = g->zp_in;
        int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + g->kw > g->w ? g->w - ix0 : g->kw;
        if (kx1 < kx0) kx1 = kx0;
        int32_t a = kx0 * c, b = kx1 * c;
        for (int32_t ky = 0; ky < g->kh; ky++, d += run) {
          int32_t iy = iy0 + ky;
          if (iy < 0 || iy >= g->h) {
            for (int32_t k = 0; k < run; k++) d[k] = (int8_t)zp;
            continue;
          }
          const int8_t *src = x + ((iy * g->w + ix0 + kx0) * c);
          for (int32_t k = 0; k < a; k++) d[k] = (int8_t)zp;
          for (int32_t k = a; k < b; k++) d[k] = src[k - a];
          for (int32_t k = b; k < run; k++) d[k] = (int8_t)zp;
        }
        widen_words(patch, x16, ng);
      }
      gemv_pixel(x16, w16, ng, g->oc, q, y);
      y += g->oc;
    }
  }
}

/* Padded input rows py0.. (padded coordinates) copied into scratch: zero-point padding, channels
 * rounded up to 4. */
static void pad_rows(const int8_t *x, const fb_geom_t *g, int32_t py0, int32_t nrows, int32_t wp, int32_t c4,
                     int8_t *p) {
  int32_t c = g->c;
  uint32_t zw = (uint32_t)(uint8_t)g->zp_in * 0x01010101u;
  for (int32_t r = 0; r < nrows; r++) {
    int32_t iy = py0 + r - g->pt;
    int8_t *row = p + r * wp * c4;
    if (iy < 0 || iy >= g->h) {
      for (int32_t i = 0; i < wp * c4 / 4; i++) ((uint32_t *)(void *)row)[i] = zw;
      continue;
    }
    int32_t ix0 = g->pl, ix1 = g->pl + g->w; /* padded columns holding input pixels */
    if (ix1 > wp) ix1 = wp;
    for (int32_t i = 0; i < ix0 * c4 / 4; i++) ((uint32_t *)(void *)row)[i] = zw;
    for (int32_t i = ix1 * c4 / 4; i < wp * c4 / 4; i++) ((uint32_t *)(void *)row)[i] = zw;
    const int8_t *src = x + iy * g->w * c;
    if (c == c4) {
      fb_copy_words(row + ix0 * c4, src, (ix1 - ix0) * c4);
    } else {
      for (int32_t px = ix0; px < ix1; px++) {
        int8_t *d = row + px * c4;
        const int8_t *s = src + (px - g->pl) * c;
        int32_t k = 0;
        for (; k < c; k++) d[k] = s[k];
        for (; k < c4; k++) d[k] = (int8_t)g->zp_in;
      }
    }
  }
}

#if FB_DSP
#define DW_TAP(OFF)                                                             \
  do {                                                                          \
    uint32_t v = *(const uint32_t *)(const void *)(px + (OFF));                 \
    int32_t xe = (int32_t)__sxtb16(v), xo = (int32_t)__sxtb16(ror8(v));         \
    int32_t we = ((const int32_t *)(const void *)wq)[0], wo = ((const int32_t *)(const void *)wq)[1]; \
    wq += 4;                                                                    \
    a0 = __smlabb(we, xe, a0);                                                  \
    a2 = __smlatt(we, xe, a2);                                                  \
    a1 = __smlabb(wo, xo, a1);                                                  \
    a3 = __smlatt(wo, xo, a3);                                                  \
  } while (0)
#else
#define DW_TAP(OFF)                      \
  do {                                   \
    const int8_t *v = px + (OFF);        \
    a0 += wq[0] * v[0];                  \
    a2 += wq[1] * v[2];                  \
    a1 += wq[2] * v[1];                  \
    a3 += wq[3] * v[3];                  \
    wq += 4;                             \
  } while (0)
#endif

#if FB_DSP
typedef struct {
  const int32_t *bias; /* 0: advances by 4 channels per group */
  int32_t *acc;        /* 4: advances likewise */
  int32_t groups;      /* 8: groups of 4 channels left */
  int32_t c4;          /* 12: bytes per padded pixel */
  int32_t rs;          /* 16: bytes per padded row */
} dw_args_t;

/* One output pixel of a 3x3 depthwise convolution: acc[c] = bias[c] + 9 taps, 4 channels per group
 * (8 instructions per tap and 4 channels: LDR, LDRD, 2 x SXTB16, SMLABB/SMLATT x 4). */
__attribute__((naked, noinline)) static void dw3x3_acc(const int8_t *p, const int16_t *w, dw_args_t *a) {
#define FB_DW_TAP(ADDR)               \
  "ldr r9, " ADDR "\n\t"              \
  "ldrd r11, r12, [r5], #8\n\t"      \
  "sxtb16 r10, r9, ror #8\n\t"       \
  "sxtb16 r9, r9\n\t"                \
  "smlabb r0, r11, r9, r0\n\t"       \
  "smlatt r2, r11, r9, r2\n\t"       \
  "smlabb r1, r12, r10, r1\n\t"      \
  "smlatt r3, r12, r10, r3\n\t"
#define FB_DW_ROW FB_DW_TAP("[r4]") FB_DW_TAP("[r4, r6]") FB_DW_TAP("[r4, r7]")
  __asm volatile(
      "push {r3-r11, lr}\n\t"
      "mov r4, r0\n\t"
      "mov r5, r1\n\t"
      "mov lr, r2\n\t"
      "ldr r6, [lr, #12]\n\t"
      "ldr r8, [lr, #16]\n\t"
      "lsl r7, r6, #1\n\t"
      "1:\n\t"
      "ldr r9, [lr, #0]\n\t"
      "ldm r9!, {r0-r3}\n\t"
      "str r9, [lr, #0]\n\t" FB_DW_ROW
      "add r4, r4, r8\n\t" FB_DW_ROW
      "add r4, r4, r8\n\t" FB_DW_ROW
      "sub r4, r4, r8, lsl #1\n\t"
      "add r4, r4, #4\n\t"
      "ldr r9, [lr, #4]\n\t"
      "stm r9!, {r0-r3}\n\t"
      "str r9, [lr, #4]\n\t"
      "ldr r9, [lr, #8]\n\t"
      "subs r9, r9, #1\n\t"
      "str r9, [lr, #8]\n\t"
      "bne 1b\n\t"
      "pop {r3-r11, pc}\n\t");
}

typedef struct {
  const int32_t *bias;  /* 0 */
  int8_t *y;            /* 4 */
  int32_t groups;       /* 8 */
  const int32_t *rq;    /* 12: (mult, e - 1) per channel */
  int32_t zp2;          /* 16: 2 * zp_out + 1 */
  int32_t unused;       /* 20 */
  int32_t c4, c42, rs;  /* 24, 28, 32 */
  const int8_t *p;      /* 36: saved input pointer */
} dwf_args_t;

/* As dw3x3_acc, with the requantisation fused (FB_OPF_FAST, no activation clamp inside int8, C a
 * multiple of 4): 8 instructions per channel, fb_mbqm_fast with the zero point folded into SSAT's
 * shift: zp + ((t + 1) >> 1) = (t + 2 zp + 1) >> 1. */
__attribute__((naked, noinline)) static void dw3x3_rq(const int8_t *p, const int16_t *w, dwf_args_t *a) {
#define FB_DW_RQ(A)                     \
  "ldrd r6, r7, [r9], #8\n\t"          \
  "lsl " A ", " A ", #1\n\t"           \
  "smmulr r8, " A ", r6\n\t"           \
  "sub " A ", r8, r8, lsr #31\n\t"     \
  "asr " A ", " A ", r7\n\t"           \
  "add " A ", " A ", r11\n\t"          \
  "ssat " A ", #8, " A ", asr #1\n\t"  \
  "strb " A ", [r4], #1\n\t"
  __asm volatile(
      "push {r3-r11, lr}\n\t"
      "mov r4, r0\n\t"
      "mov r5, r1\n\t"
      "mov lr, r2\n\t"
      "add r6, lr, #24\n\t"
      "ldm r6, {r6, r7, r8}\n\t"
      "1:\n\t"
      "ldr r9, [lr, #0]\n\t"
      "ldm r9!, {r0-r3}\n\t"
      "str r9, [lr, #0]\n\t" FB_DW_ROW
      "add r4, r4, r8\n\t" FB_DW_ROW
      "add r4, r4, r8\n\t" FB_DW_ROW
      "sub r4, r4, r8, lsl #1\n\t"
      "add r4, r4, #4\n\t"
      "str r4, [lr, #36]\n\t"
      "ldr r4, [lr, #4]\n\t"
      "ldrd r9, r11, [lr, #12]\n\t" FB_DW_RQ("r0") FB_DW_RQ("r1") FB_DW_RQ("r2") FB_DW_RQ("r3")
      "str r4, [lr, #4]\n\t"
      "str r9, [lr, #12]\n\t"
      "add r6, lr, #24\n\t"
      "ldm r6, {r6, r7, r8}\n\t"
      "ldr r4, [lr, #36]\n\t"
      "ldr r12, [lr, #8]\n\t"
      "subs r12, r12, #1\n\t"
      "str r12, [lr, #8]\n\t"
      "bne 1b\n\t"
      "pop {r3-r11, pc}\n\t");
}
#endif

/* Requantise n channels of one pixel. */
static void requant_pixel(const int32_t *acc, int32_t n, const fb_crq_t *q, int8_t *y) {
  const int32_t *rq = q->rq;
  int32_t zp = q->zp_out, lo = q->lo, hi = q->hi;
  if (q->mode == FB_RQ_FAST) {
    for (int32_t k = 0; k < n; k++) y[k] = rq_fast(acc[k], rq[2 * k], rq[2 * k + 1], zp, lo, hi);
  } else {
    for (int32_t k = 0; k < n; k++) y[k] = rq_exact(acc[k], rq[2 * k], rq[2 * k + 1], zp, lo, hi, q->mode);
  }
}

#define FB_DW_BAND 4 /* output rows per padded band (runtime_graph.c sizes the scratch) */

void fb_dwconv2d_s8(const int8_t *x, const fb_geom_t *g, const int16_t *w16, const fb_crq_t *q, int8_t *scratch,
                    int8_t *y) {
  int32_t c = g->c, c4 = (c + 3) & ~3, kh = g->kh, kw = g->kw;
  int32_t wp = (g->ow - 1) * g->sw + kw;
  int32_t rs = wp * c4; /* bytes per padded row */
  int32_t acc[4 * 64];  /* one pixel's accumulators, up to 256 channels at a time */
  int fused = kh == 3 && kw == 3 && q->mode == FB_RQ_FAST && q->lo == -128 && q->hi == 127 && (c & 3) == 0;
  (void)fused; /* the portable build has no fused path */
#if FB_CONV_MVE
  int16_t wnb[FB_MVE_DW_WN] __attribute__((aligned(8)));
  const int16_t *wn = q->mode != FB_RQ_SINGLE ? fb_mve_dw_natural(w16, g, c4, wnb) : 0;
#endif
  for (int32_t oy = 0; oy < g->oh; oy++) {
    int32_t band = oy % FB_DW_BAND; /* output rows share one padded band of input rows */
    if (band == 0) {
      int32_t nb = g->oh - oy < FB_DW_BAND ? g->oh - oy : FB_DW_BAND;
      pad_rows(x, g, oy * g->sh, (nb - 1) * g->sh + kh, wp, c4, scratch);
    }
#if FB_CONV_MVE
    if (q->mode != FB_RQ_SINGLE) {
      fb_mve_dw_row(scratch + band * g->sh * rs, w16, wn, g, c4, rs, q, y);
      y += g->ow * c;
      continue;
    }
#endif
    for (int32_t ox = 0; ox < g->ow; ox++) {
      const int8_t *base = scratch + band * g->sh * rs + (ox * g->sw) * c4;
#if FB_DSP
      if (fused) {
        dwf_args_t a = {q->bias, y, c4 / 4, q->rq, 2 * q->zp_out + 1, 0, c4, 2 * c4, rs, 0};
        dw3x3_rq(base, w16, &a);
        y += c;
        continue;
      }
#endif
      for (int32_t cb = 0; cb < c4; cb += 256) { /* blocks of up to 256 channels */
        int32_t nb = c4 - cb < 256 ? c4 - cb : 256;
        const int16_t *wq = w16 + cb * kh * kw;
#if FB_DSP
        if (kh == 3 && kw == 3) {
          dw_args_t a = {q->bias + cb, acc, nb / 4, c4, rs};
          dw3x3_acc(base + cb, wq, &a);
        } else
#endif
        {
          for (int32_t c0 = 0; c0 < nb; c0 += 4) {
            const int8_t *px = base + cb + c0;
            int32_t a0 = q->bias[cb + c0], a1 = q->bias[cb + c0 + 1], a2 = q->bias[cb + c0 + 2],
                    a3 = q->bias[cb + c0 + 3];
            for (int32_t ky = 0; ky < kh; ky++)
              for (int32_t kx = 0; kx < kw; kx++) DW_TAP(ky * rs + kx * c4);
            acc[c0] = a0;
            acc[c0 + 1] = a1;
            acc[c0 + 2] = a2;
            acc[c0 + 3] = a3;
          }
        }
        fb_crq_t qb = *q;
        qb.rq += 2 * cb;
        requant_pixel(acc, (c - cb < nb ? c - cb : nb), &qb, y + cb);
      }
      y += c;
    }
  }
}

void fb_maxpool_s8(const int8_t *x, const fb_geom_t *g, int32_t lo, int32_t hi, int8_t *y) {
  int32_t c = g->c;
  for (int32_t oy = 0; oy < g->oh; oy++)
    for (int32_t ox = 0; ox < g->ow; ox++)
      for (int32_t k = 0; k < c; k++) {
        int32_t m = -128;
        for (int32_t ky = 0; ky < g->kh; ky++) {
          int32_t iy = oy * g->sh - g->pt + ky;
          if (iy < 0 || iy >= g->h) continue;
          for (int32_t kx = 0; kx < g->kw; kx++) {
            int32_t ix = ox * g->sw - g->pl + kx;
            if (ix < 0 || ix >= g->w) continue;
            int32_t v = x[(iy * g->w + ix) * c + k];
            m = v > m ? v : m;
          }
        }
        *y++ = (int8_t)clamp8(m, lo, hi);
      }
}

void fb_avgpool_s8(const int8_t *x, const fb_geom_t *g, int32_t lo, int32_t hi, int8_t *y) {
#if FB_CONV_MVE
  fb_mve_avgpool_s8(x, g, lo, hi, y);
  return;
#endif
  int32_t c = g->c;
  for (int32_t oy = 0; oy < g->oh; oy++)
    for (int32_t ox = 0; ox < g->ow; ox++) {
      int32_t y0 = oy * g->sh - g->pt, x0 = ox * g->sw - g->pl;
      int32_t ya = y0 < 0 ? 0 : y0, yb = y0 + g->kh > g->h ? g->h : y0 + g->kh;
      int32_t xa = x0 < 0 ? 0 : x0, xb = x0 + g->kw > g->w ? g->w : x0 + g->kw;
      int32_t n = (yb - ya) * (xb - xa);
      for (int32_t k = 0; k < c; k++) {
        int32_t s = 0;
        for (int32_t iy = ya; iy < yb; iy++)
          for (int32_t ix = xa; ix < xb; ix++) s += x[(iy * g->w + ix) * c + k];
        int32_t r = n ? (s > 0 ? (s + n / 2) / n : (s - n / 2) / n) : 0;
        *y++ = (int8_t)clamp8(r, lo, hi);
      }
    }
}

void fb_mean_s8(const int8_t *x, int32_t n, int32_t c, int32_t zp_in, int32_t mult, int32_t shift, int32_t zp_out,
                int32_t lo, int32_t hi, int8_t *y) {
  for (int32_t k = 0; k < c; k++) {
    int32_t s = 0;
    for (int32_t i = 0; i < n; i++) s += x[i * c + k] - zp_in;
    int32_t a = fb_mbqm(s, mult, shift);
    a = a < -256 ? -256 : a > 256 ? 256 : a;
    y[k] = (int8_t)clamp8(a + zp_out, lo, hi);
  }
}

void fb_add_s8(const int8_t *a, const int8_t *b, int32_t n, const int32_t *p, int32_t zp_a, int32_t zp_b,
               int32_t zp_out, int32_t lo, int32_t hi, int8_t *y) {
  int32_t ls = p[0];
  for (int32_t i = 0; i < n; i++) {
    int32_t ya = fb_mbqm((a[i] - zp_a) * (1 << ls), p[1], p[2]);
    int32_t yb = fb_mbqm((b[i] - zp_b) * (1 << ls), p[3], p[4]);
    int32_t r = fb_mbqm(ya + yb, p[5], p[6]);
    r = r < -256 ? -256 : r > 256 ? 256 : r;
    y[i] = (int8_t)clamp8(r + zp_out, lo, hi);
  }
}
