/* Helium (MVE) convolution kernels for the Cortex-M55 (see kernels_conv_mve.h).
 *
 * Convolution / dense: one VMLADAVA.S8 per 16 patch columns of an output channel (int8 x int8 summed
 * into the int32 accumulator: exact). The blob's int16 weights are sign-extended int8 values, so the
 * low byte of each halfword is the int8 weight, and one byte gather with a constant offset vector
 * reads a row's 16 columns in natural order out of the [4 rows][2][4][2] block layout (blob.h); the
 * int8 input (or an int8 patch) needs no widening. A 1x1 convolution without padding reads its pixel
 * straight from the input; other geometries (1-3 input channels included) copy the patch as byte runs
 * with zero-point fill, 16 bytes per predicated vector move.
 * Depthwise: 8 channels in the lanes, VMULLB/VMULLT (int16 x int16 -> int32) per tap on the padded band;
 * a 3x3 layer whose pixel stride is one of a few constants copies its weights once into natural channel
 * order, so that every tap loads its input and weights at immediate offsets (6 instructions per tap and
 * 8 channels), and runs a row's pixels three at a time.
 * Requantisation: 4 channels per vector, integer-identical to fb_mbqm: VQSHL (saturating left shift),
 * VQRDMULH (= SaturatingRoundingDoublingHighMul), then TFLite's rounding divide by 2^e (half away from
 * zero) as VRSHL of q - [q < 0]; zero point with a saturating add, then the activation clamp. The
 * FB_RQ_FAST case is an asm loop that loads each (mult, shift) vector once for three pixels.
 * Average pooling: 16 channels of int32 sums per pass of the window, the division per channel.
 * Figures are QEMU instruction counts: gathers and scatters take one instruction but several beats on
 * a real M55. */
#include "kernels_conv_mve.h"

#if FB_CONV_MVE
#include <arm_mve.h>

#define INLINE static inline __attribute__((always_inline))

typedef struct {
  int32x4_t zp, lo, hi;
  int32_t mode;
} rqc_t;

/* fb_mbqm (FB_RQ_EXACT, s = shift) or fb_mbqm_fast (FB_RQ_FAST, s = e - 1), + zp, clamped. */
INLINE int32x4_t requant(int32x4_t acc, int32x4_t m, int32x4_t s, const rqc_t *c) {
  int32x4_t q, r;
  if (c->mode == FB_RQ_FAST) { /* e = s + 1 in [1, 31]: shift right by e = VRSHL by ~s */
    q = vqrdmulhq_s32(acc, m);
    q = vaddq_s32(q, vshrq_n_s32(q, 31));
    r = vrshlq_s32(q, vmvnq_s32(s));
  } else {
    int32x4_t z = vdupq_n_s32(0);
    q = vqrdmulhq_s32(vqshlq_s32(acc, vmaxq_s32(s, z)), m);
    q = vaddq_m_s32(q, q, vshrq_n_s32(q, 31), vcmpltq_n_s32(s, 0)); /* only where a right shift follows */
    r = vrshlq_s32(q, vminq_s32(s, z));
  }
  r = vqaddq_s32(r, c->zp);
  return vminq_s32(vmaxq_s32(r, c->lo), c->hi);
}

INLINE rqc_t rq_consts(const fb_crq_t *q) {
  rqc_t c = {vdupq_n_s32(q->zp_out), vdupq_n_s32(q->lo), vdupq_n_s32(q->hi), q->mode};
  return c;
}

/* Requantise n accumulators (per channel (mult, shift) pairs in rq) into n int8 outputs. */
static void requant_store(const int32_t *acc, int32_t n, const int32_t *rq, const rqc_t *c, int8_t *y) {
  const rqc_t k = *c;
  int32_t i = 0;
  if (k.mode == FB_RQ_FAST) {
    const rqc_t f = {k.zp, k.lo, k.hi, FB_RQ_FAST}; /* a constant mode: requant() folds its branch */
    for (; i + 4 <= n; i += 4, acc += 4, rq += 8, y += 4) {
      int32x4x2_t mr = vld2q_s32(rq);
      vstrbq_s32(y, requant(vld1q_s32(acc), mr.val[0], mr.val[1], &f));
    }
  } else {
    const rqc_t e = {k.zp, k.lo, k.hi, FB_RQ_EXACT};
    for (; i + 4 <= n; i += 4, acc += 4, rq += 8, y += 4) {
      int32x4x2_t mr = vld2q_s32(rq);
      vstrbq_s32(y, requant(vld1q_s32(acc), mr.val[0], mr.val[1], &e));
    }
  }
  if (i < n) {
    int32x4x2_t mr = vld2q_s32(rq);
    vstrbq_p_s32(y, requant(vld1q_s32(acc), mr.val[0], mr.val[1], &k), vctp32q((uint32_t)(n - i)));
  }
}

/* Byte offsets of a row's 16 columns (4 groups of 4, natural order) in a 4-row block, rows 0-3: group
 * gi at 32 gi bytes, column j of the group at halfword (j & 1) * 8 + (j >> 1), row r at 4 r bytes. */
static const uint8_t row_offs[64] __attribute__((aligned(8))) = {
    0, 16, 2, 18, 32, 48, 34, 50, 64, 80, 66, 82, 96, 112, 98, 114,
    4, 20, 6, 22, 36, 52, 38, 54, 68, 84, 70, 86, 100, 116, 102, 118,
    8, 24, 10, 26, 40, 56, 42, 58, 72, 88, 74, 90, 104, 120, 106, 122,
    12, 28, 14, 30, 44, 60, 46, 62, 76, 92, 78, 94, 108, 124, 110, 126};

#define FB_MVE_ROWS 64 /* output channels accumulated before one requantisation pass */

/* FB_RQ_FAST requantisation of nq groups of 4 channels for NP (1 or 3) pixels sharing the (mult, e - 1)
 * pairs rq, in asm (9 instructions per 4 outputs, the pairs loaded and ~(e - 1) = -e formed once for the
 * NP pixels): accumulators at acc (pixel k at acc + k FB_MVE_ROWS), outputs at ya, yb, yc. */
#define FB_RQ_PIX(Y, OFF)                 \
  "vldrw.u32 q2, [%[acc], #" OFF "]\n\t" \
  "vqrdmulh.s32 q2, q2, q0\n\t"          \
  "vshr.s32 q3, q2, #31\n\t"             \
  "vadd.i32 q2, q2, q3\n\t"              \
  "vrshl.s32 q2, q2, q1\n\t"             \
  "vqadd.s32 q2, q2, q7\n\t"             \
  "vmax.s32 q2, q2, q6\n\t"              \
  "vmin.s32 q2, q2, q5\n\t"              \
  "vstrb.32 q2, [%[" Y "]], #4\n\t"
#define FB_RQ_ASM(PIXELS)                                                                          \
  register int32_t cnt __asm("lr") = nq;                                                           \
  __asm volatile("vldrw.u32 q7, [%[c]]\n\t"                                                        \
                 "vldrw.u32 q6, [%[c], #16]\n\t"                                                   \
                 "vldrw.u32 q5, [%[c], #32]\n\t"                                                   \
                 "dls lr, lr\n"                                                                    \
                 "1:\n\t"                                                                          \
                 "vld20.32 {q0, q1}, [%[rq]]\n\t"                                                  \
                 "vld21.32 {q0, q1}, [%[rq]]!\n\t"                                                 \
                 "vmvn q1, q1\n\t" PIXELS "adds %[acc], #16\n\t"                                   \
                 "le lr, 1b\n\t"                                                                   \
                 : [acc] "+r"(acc), [rq] "+r"(rq), [ya] "+l"(ya), [yb] "+l"(yb), [yc] "+l"(yc), "+r"(cnt) \
                 : [c] "r"(c)                                                                      \
                 : "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d10", "d11", "d12", "d13", \
                   "d14", "d15")
static void rq_fast3(const int32_t *acc, int32_t nq, const int32_t *rq, const rqc_t *c, int8_t *ya, int8_t *yb,
                     int8_t *yc) {
  acc += FB_MVE_ROWS; /* pixel b: the others at -256 and +256 bytes, inside VLDRW's offset range */
  FB_RQ_ASM(FB_RQ_PIX("ya", "-256") FB_RQ_PIX("yb", "0") FB_RQ_PIX("yc", "256"));
}
static void rq_fast1(const int32_t *acc, int32_t nq, const int32_t *rq, const rqc_t *c, int8_t *ya) {
  int8_t *yb = ya, *yc = ya;
  FB_RQ_ASM(FB_RQ_PIX("ya", "0"));
}

/* requant_store of three pixels' accumulators (acc, acc + FB_MVE_ROWS, acc + 2 FB_MVE_ROWS). */
static void requant_store3(const int32_t *acc, int32_t n, const int32_t *rq, const rqc_t *c, int8_t *ya, int8_t *yb,
                           int8_t *yc) {
  int32_t i = 0;
  if (c->mode == FB_RQ_FAST && n >= 4) {
    i = n & ~3;
    rq_fast3(acc, n >> 2, rq, c, ya, yb, yc);
  }
  if (i < n) {
    requant_store(acc + i, n - i, rq + 2 * i, c, ya + i);
    requant_store(acc + FB_MVE_ROWS + i, n - i, rq + 2 * i, c, yb + i);
    requant_store(acc + 2 * FB_MVE_ROWS + i, n - i, rq + 2 * i, c, yc + i);
  }
}

/* State of one 4-row block of three pixels (gemv3's asm reads it through one register). */
typedef struct {
  const int8_t *pa, *pb, *pc; /* 0, 4, 8: the three patches */
  const int8_t *wp;           /* 12: the block's weights */
  int32_t nfull, rem;         /* 16, 20: whole 16-column chunks, columns left (0-15) */
  const int32_t *bias;        /* 24: the block's 4 biases */
  int32_t *acc;               /* 28: acc[0..3] pixel a, [64..67] b, [128..131] c */
  const uint8_t *tab;         /* 32: row_offs */
} blk_t;

/* Rows R, R+1 (R = 0 or 2) of a block: biases, the chunk loop (one gathered weight vector per row for all
 * three pixels, 6 accumulators in even registers: VMLADAVA's destination must be even), a predicated
 * last chunk (contiguous loads zero their inactive lanes; TAIL drops it where the columns are whole
 * chunks) and the stores. */
#define FB_BLK_PASS(R, TAIL)                                                                               \
  "ldr lr, [%[S], #32]\n\t"                                                                            \
  "vldrw.u32 q4, [lr, #" #R "*16]\n\t"                                                                 \
  "vldrw.u32 q5, [lr, #" #R "*16+16]\n\t"                                                              \
  "ldr lr, [%[S], #24]\n\t"                                                                            \
  "ldrd %[a0], %[a1], [lr, #" #R "*4]\n\t"                                                             \
  "mov %[b0], %[a0]\n\t"                                                                               \
  "mov %[c0], %[a0]\n\t"                                                                               \
  "mov %[b1], %[a1]\n\t"                                                                               \
  "mov %[c1], %[a1]\n\t"                                                                               \
  "ldrd %[pa], %[pb], [%[S], #0]\n\t"                                                                  \
  "ldrd %[pc], %[wp], [%[S], #8]\n\t"                                                                  \
  "ldr lr, [%[S], #16]\n\t"                                                                            \
  "wls lr, lr, 2f\n"                                                                                   \
  "1:\n\t"                                                                                             \
  "vldrb.u8 q0, [%[pa]], #16\n\t"                                                                      \
  "vldrb.u8 q1, [%[pb]], #16\n\t"                                                                      \
  "vldrb.u8 q2, [%[pc]], #16\n\t"                                                                      \
  "vldrb.u8 q3, [%[wp], q4]\n\t"                                                                       \
  "vmlava.s8 %[a0], q3, q0\n\t"                                                                        \
  "vmlava.s8 %[b0], q3, q1\n\t"                                                                        \
  "vmlava.s8 %[c0], q3, q2\n\t"                                                                        \
  "vldrb.u8 q3, [%[wp], q5]\n\t"                                                                       \
  "vmlava.s8 %[a1], q3, q0\n\t"                                                                        \
  "vmlava.s8 %[b1], q3, q1\n\t"                                                                        \
  "vmlava.s8 %[c1], q3, q2\n\t"                                                                        \
  "adds %[wp], #128\n\t"                                                                               \
  "le lr, 1b\n"                                                                                        \
  "2:\n\t" TAIL(                                                                                       \
  "ldr lr, [%[S], #20]\n\t"                                                                            \
  "cmp lr, #0\n\t"                                                                                     \
  "beq 3f\n\t"                                                                                         \
  "vctp.8 lr\n\t"                                                                                      \
  "vpsttt\n\t"                                                                                         \
  "vldrbt.u8 q0, [%[pa]]\n\t"                                                                          \
  "vldrbt.u8 q1, [%[pb]]\n\t"                                                                          \
  "vldrbt.u8 q2, [%[pc]]\n\t"                                                                          \
  "vpst\n\t"                                                                                           \
  "vldrbt.u8 q3, [%[wp], q4]\n\t"                                                                      \
  "vmlava.s8 %[a0], q3, q0\n\t"                                                                        \
  "vmlava.s8 %[b0], q3, q1\n\t"                                                                        \
  "vmlava.s8 %[c0], q3, q2\n\t"                                                                        \
  "vpst\n\t"                                                                                           \
  "vldrbt.u8 q3, [%[wp], q5]\n\t"                                                                      \
  "vmlava.s8 %[a1], q3, q0\n\t"                                                                        \
  "vmlava.s8 %[b1], q3, q1\n\t"                                                                        \
  "vmlava.s8 %[c1], q3, q2\n"                                                                          \
  "3:\n\t")                                                                                            \
  "ldr lr, [%[S], #28]\n\t"                                                                            \
  "strd %[a0], %[a1], [lr, #" #R "*4]\n\t"                                                             \
  "strd %[b0], %[b1], [lr, #" #R "*4+256]\n\t"                                                         \
  "strd %[c0], %[c1], [lr, #" #R "*4+512]\n\t"

#define FB_KEEP(X) X
#define FB_DROP(X)
/* One 4-row block of three pixels into S->acc (TAIL: FB_KEEP, or FB_DROP where S->rem is 0). */
#define FB_BLOCK3(NAME, TAIL)                                                                               \
  INLINE void NAME(blk_t *S) {                                                                              \
    int32_t a0, a1, b0, b1, c0, c1;                                                                         \
    const int8_t *pa, *pb, *pc, *wp;                                                                        \
    __asm volatile(FB_BLK_PASS(0, TAIL) FB_BLK_PASS(2, TAIL)                                                \
                   : [a0] "=&Te"(a0), [a1] "=&Te"(a1), [b0] "=&Te"(b0), [b1] "=&Te"(b1), [c0] "=&Te"(c0),    \
                     [c1] "=&Te"(c1), [pa] "=&r"(pa), [pb] "=&r"(pb), [pc] "=&r"(pc), [wp] "=&r"(wp)         \
                   : [S] "r"(S)                                                                             \
                   : "memory", "lr", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11"); \
  }
FB_BLOCK3(block3, FB_KEEP)
FB_BLOCK3(block3_whole, FB_DROP)

/* All oc outputs of three pixels from their kk-byte int8 patches (pointers may repeat, and so may the
 * outputs: a repeated pixel is written twice with the same bytes). */
static void gemv3(const int8_t *xa, const int8_t *xb, const int8_t *xc, int32_t kk, const int8_t *w8, int32_t k4,
                  int32_t oc, const fb_crq_t *q, const rqc_t *c, int8_t *ya, int8_t *yb, int8_t *yc) {
  int32_t acc[3 * FB_MVE_ROWS] __attribute__((aligned(8)));
  blk_t S = {xa, xb, xc, w8, kk >> 4, kk & 15, q->bias, acc, row_offs};
  for (int32_t c0 = 0; c0 < oc; c0 += FB_MVE_ROWS) {
    int32_t n = oc - c0 < FB_MVE_ROWS ? oc - c0 : FB_MVE_ROWS;
    S.acc = acc;
    for (int32_t r0 = 0; r0 < n; r0 += 4) {
      if (S.rem)
        block3(&S);
      else
        block3_whole(&S);
      S.wp += 8 * k4;
      S.bias += 4;
      S.acc += 4;
    }
    requant_store3(acc, n, q->rq + 2 * c0, c, ya + c0, yb + c0, yc + c0);
  }
}

INLINE void vcopy(int8_t *d, const int8_t *s, int32_t n) {
  if (n < 8) { /* short runs (a first layer's 1-3 channels): bytes, cheaper than a predicated vector */
    for (int32_t k = 0; k < n; k++) d[k] = s[k];
    return;
  }
  for (; n >= 16; n -= 16, d += 16, s += 16) vst1q_s8(d, vld1q_s8(s));
  if (n > 0) {
    mve_pred16_t p = vctp8q((uint32_t)n);
    vstrbq_p_s8(d, vldrbq_z_s8(s, p), p);
  }
}

INLINE void vfill(int8_t *d, int8x16_t v, int32_t n) {
  if (n < 8) {
    int8_t b = vgetq_lane_s8(v, 0);
    for (int32_t k = 0; k < n; k++) d[k] = b;
    return;
  }
  for (; n >= 16; n -= 16, d += 16) vst1q_s8(d, v);
  if (n > 0) vstrbq_p_s8(d, v, vctp8q((uint32_t)n));
}

/* The int8 patch of output pixel (oy, ox) into d (kk bytes): kernel rows as byte runs, zero-point fill. */
static void patch(const int8_t *x, const fb_geom_t *g, int32_t oy, int32_t ox, int8x16_t zp, int8_t *d) {
  int32_t ci = g->c, run = g->kw * ci;
  int32_t iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
  int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + g->kw > g->w ? g->w - ix0 : g->kw;
  if (kx1 < kx0) kx1 = kx0;
  int32_t a = kx0 * ci, b = kx1 * ci;
  if (a == 0 && b == run && (run & 3) == 0 && iy0 >= 0 && iy0 + g->kh <= g->h) {
    /* the window inside the input: rows of words (d is 4-byte aligned; unaligned LDR: Armv8-M allows it) */
    const int8_t *src = x + (iy0 * g->w + ix0) * ci;
    int32_t stride = g->w * ci;
    for (int32_t ky = 0; ky < g->kh; ky++, d += run, src += stride)
      for (int32_t k = 0; k < run; k += 4) {
        uint32_t v;
        __builtin_memcpy(&v, src + k, 4);
        *(uint32_t *)(void *)(d + k) = v;
      }
    return;
  }
  if (run <= 16) { /* short rows (a first layer's 1-3 channels): one predicated vector per row */
    mve_pred16_t pr = vctp8q((uint32_t)run), pc = vctp8q((uint32_t)(b - a));
    int edge = a > 0 || b < run;
    for (int32_t ky = 0; ky < g->kh; ky++, d += run) {
      int32_t iy = iy0 + ky;
      if (iy < 0 || iy >= g->h) {
        vstrbq_p_s8(d, zp, pr);
        continue;
      }
      if (edge) vstrbq_p_s8(d, zp, pr);
      vstrbq_p_s8(d + a, vldrbq_z_s8(x + (iy * g->w + ix0 + kx0) * ci, pc), pc);
    }
    return;
  }
  for (int32_t ky = 0; ky < g->kh; ky++, d += run) {
    int32_t iy = iy0 + ky;
    if (iy < 0 || iy >= g->h) {
      vfill(d, zp, run);
      continue;
    }
    const int8_t *src = x + (iy * g->w + ix0 + kx0) * ci;
    if (a == 0 && b == run && (run & 3) == 0) { /* a whole row of words (d is 4-byte aligned) */
      for (int32_t k = 0; k < run; k += 4) {
        uint32_t v;
        __builtin_memcpy(&v, src + k, 4); /* an unaligned LDR: Armv8-M allows it */
        *(uint32_t *)(void *)(d + k) = v;
      }
      continue;
    }
    vfill(d, zp, a);
    vcopy(d + a, src, b - a);
    vfill(d + b, zp, run - b);
  }
}

int fb_mve_conv2d_s8(const int8_t *x, const fb_geom_t *g, const int16_t *w16, int32_t k4, const fb_crq_t *q,
                     int8_t *scratch, int8_t *y) {
  if (q->mode == FB_RQ_SINGLE) return 0;
  rqc_t c = rq_consts(q);
  int32_t ci = g->c, kk = g->kh * g->kw * ci, npix = g->oh * g->ow, oc = g->oc;
  int pointwise = g->kh == 1 && g->kw == 1 && g->pt == 0 && g->pl == 0;
  int8x16_t zp = vdupq_n_s8((int8_t)g->zp_in);
  const int8_t *w8 = (const int8_t *)(const void *)w16;
  int8_t *pa = scratch, *pb = scratch + k4, *pc = scratch + 2 * k4; /* scratch: 3 * k4 bytes (blob.h) */
  for (int32_t i = 0; i < npix; i += 3) {
    int32_t pix[3] = {i, i + 1 < npix ? i + 1 : i, i + 2 < npix ? i + 2 : i}; /* the last may repeat */
    const int8_t *xp[3];
    int8_t *pp[3] = {pa, pb, pc};
    for (int32_t k = 0; k < 3; k++) {
      int32_t oy = pix[k] / g->ow, ox = pix[k] % g->ow;
      if (pointwise) {
        xp[k] = x + ((oy * g->sh) * g->w + ox * g->sw) * ci;
      } else {
        patch(x, g, oy, ox, zp, pp[k]);
        xp[k] = pp[k];
      }
    }
    gemv3(xp[0], xp[1], xp[2], kk, w8, k4, oc, q, &c, y + pix[0] * oc, y + pix[1] * oc, y + pix[2] * oc);
  }
  return 1;
}

/* Accumulators of 8 channels (or the last 4: full = 0) of one depthwise output pixel, stored in natural
 * order at acc (even channels from VMULLB, odd from VMULLT, interleaved back by VST2). wg: the first
 * group's weights; wo: halfword offsets putting both groups' taps in natural channel order. */
INLINE void dw8(const int8_t *px, const int16_t *wg, int32_t kh, int32_t kw, int32_t c4, int32_t rs,
                uint16x8_t wo, const int32_t *bias, int full, int32_t *acc) {
  mve_pred16_t p16 = vctp16q(4);
  int32x4x2_t a = vld2q_s32(bias); /* even, odd channels (the last group reads 4 entries past: rq) */
  int32x4_t ae = a.val[0], ao = a.val[1];
  for (int32_t ky = 0; ky < kh; ky++) {
    const int8_t *row = px + ky * rs;
#pragma GCC unroll 3
    for (int32_t kx = 0; kx < kw; kx++, row += c4, wg += 4) {
      int16x8_t xv, wv;
      if (full) {
        xv = vldrbq_s16(row);
        wv = vldrhq_gather_shifted_offset_s16(wg, wo);
      } else {
        xv = vldrbq_z_s16(row, p16);
        wv = vldrhq_gather_shifted_offset_z_s16(wg, wo, p16);
      }
      ae = vaddq_s32(ae, vmullbq_int_s16(xv, wv));
      ao = vaddq_s32(ao, vmulltq_int_s16(xv, wv));
    }
  }
  a.val[0] = ae;
  a.val[1] = ao;
  vst2q_s32(acc, a);
}

/* dw8 for a full 8-channel group of a 3x3 kernel, in asm (gcc 12 spills Q registers in the C version):
 * per tap VLDRB.S16, the weight gather, VMULLB/VMULLT and two VADDs, 8 instructions for 8 MACs. */
static const uint16_t wo_3x3[8] = {0, 2, 1, 3, 36, 38, 37, 39};
#define FB_DW_TAP                          \
  "vldrb.s16 q2, [%[rx]]\n\t"              \
  "add %[rx], %[c4]\n\t"                   \
  "vldrh.u16 q3, [%[rw], q5, uxtw #1]\n\t" \
  "adds %[rw], #8\n\t"                     \
  "vmullb.s16 q4, q2, q3\n\t"              \
  "vadd.i32 q0, q0, q4\n\t"                \
  "vmullt.s16 q4, q2, q3\n\t"              \
  "vadd.i32 q1, q1, q4\n\t"
#define FB_DW_ROW FB_DW_TAP FB_DW_TAP FB_DW_TAP "add %[rx], %[step]\n\t"
/* ng full 8-channel groups of a 3x3 depthwise pixel from px (weights wg, biases bias) into acc. */
INLINE void dw3x3_groups(const int8_t *px, const int16_t *wg, int32_t c4, int32_t rs, const int32_t *bias,
                         int32_t *acc, int32_t ng) {
  register int32_t cnt __asm("lr") = ng;
  const int8_t *rx, *base = px;
  const int16_t *rw = wg;
  int32_t step = rs - 3 * c4;
  __asm volatile("vldrh.u16 q5, [%[wo]]\n\t"
                 "dls lr, lr\n"
                 "1:\n\t"
                 "mov %[rx], %[base]\n\t"
                 "vld20.32 {q0, q1}, [%[rb]]\n\t"
                 "vld21.32 {q0, q1}, [%[rb]]!\n\t" FB_DW_ROW FB_DW_ROW FB_DW_ROW
                 "vst20.32 {q0, q1}, [%[ra]]\n\t"
                 "vst21.32 {q0, q1}, [%[ra]]!\n\t"
                 "adds %[base], #8\n\t"
                 "adds %[rw], #72\n\t"
                 "le lr, 1b\n\t"
                 : [rx] "=&l"(rx), [rw] "+r"(rw), [base] "+r"(base), [rb] "+r"(bias), [ra] "+r"(acc), "+r"(cnt)
                 : [c4] "r"(c4), [step] "r"(step), [wo] "r"(wo_3x3)
                 : "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11");
}

/* dw3x3_groups with the weights in natural channel order (fb_mve_dw_natural) and the pixel stride c4 a
 * constant: every tap's input and weights at an immediate offset (three row pointers at the middle
 * column, post-incremented by the middle tap), 6 instructions per tap and 8 channels. */
#define FB_DWN_MUL                  \
  "vmullb.s16 q4, q2, q3\n\t"      \
  "vadd.i32 q0, q0, q4\n\t"        \
  "vmullt.s16 q4, q2, q3\n\t"      \
  "vadd.i32 q1, q1, q4\n\t"
#define FB_DWN_ROW(R, T0, T1, T2, C4)                           \
  "vldrb.s16 q2, [%[" R "], #-" #C4 "]\n\t"                  \
  "vldrh.u16 q3, [%[rw], #" #T0 "*16]\n\t" FB_DWN_MUL           \
  "vldrb.s16 q2, [%[" R "], #" #C4 "]\n\t"                   \
  "vldrh.u16 q3, [%[rw], #" #T2 "*16]\n\t" FB_DWN_MUL           \
  "vldrb.s16 q2, [%[" R "]], #8\n\t"                          \
  "vldrh.u16 q3, [%[rw], #" #T1 "*16]\n\t" FB_DWN_MUL
#define FB_DWN_FN(C4)                                                                                      \
  static void dw3x3n_##C4(const int8_t *px, const int16_t *wn, int32_t rs, const int32_t *bias, int32_t *acc, \
                          int32_t ng) {                                                                    \
    register int32_t cnt __asm("lr") = ng;                                                                 \
    const int8_t *r0 = px + C4, *r1 = r0 + rs, *r2 = r1 + rs;                                              \
    __asm volatile("dls lr, lr\n"                                                                          \
                   "1:\n\t"                                                                                \
                   "vld20.32 {q0, q1}, [%[rb]]\n\t"                                                        \
                   "vld21.32 {q0, q1}, [%[rb]]!\n\t" FB_DWN_ROW("r0", 0, 1, 2, C4)                          \
                       FB_DWN_ROW("r1", 3, 4, 5, C4) FB_DWN_ROW("r2", 6, 7, 8, C4)                          \
                   "vst20.32 {q0, q1}, [%[ra]]\n\t"                                                        \
                   "vst21.32 {q0, q1}, [%[ra]]!\n\t"                                                       \
                   "adds %[rw], #144\n\t"                                                                  \
                   "le lr, 1b\n\t"                                                                         \
                   : [r0] "+l"(r0), [r1] "+l"(r1), [r2] "+l"(r2), [rw] "+r"(wn), [rb] "+r"(bias),           \
                     [ra] "+r"(acc), "+r"(cnt)                                                             \
                   :                                                                                       \
                   : "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9");                \
  }
FB_DWN_FN(16)
FB_DWN_FN(32)
FB_DWN_FN(48)
FB_DWN_FN(64)
FB_DWN_FN(96)

/* The pixel strides with an immediate-offset 3x3 kernel (VLDRB.S16 reaches +-127 bytes). */
static int dwn_stride_ok(int32_t c4) { return c4 == 16 || c4 == 32 || c4 == 48 || c4 == 64 || c4 == 96; }

const int16_t *fb_mve_dw_natural(const int16_t *w16, const fb_geom_t *g, int32_t c4, int16_t *wn) {
  if (g->kh != 3 || g->kw != 3 || !dwn_stride_ok(c4) || c4 > FB_MVE_DW_WN / 9) return 0;
  uint16x8_t wo = vld1q_u16(wo_3x3);
  for (int32_t gi = 0; gi < c4 / 8; gi++)
    for (int32_t t = 0; t < 9; t++)
      vst1q_s16(wn + (gi * 9 + t) * 8, vldrhq_gather_shifted_offset_s16(w16 + gi * 72 + 4 * t, wo));
  return wn;
}

#define FB_MVE_DW_CH 256 /* channels per requantisation pass */

void fb_mve_dw_pixel(const int8_t *base, const int16_t *w16, const int16_t *wn, const fb_geom_t *g, int32_t c4,
                     int32_t rs, const fb_crq_t *q, int8_t *y) {
  static const uint16_t wo_tab[8] = {0, 2, 1, 3, 0, 2, 1, 3};
  int32_t acc[FB_MVE_DW_CH] __attribute__((aligned(8)));
  int32_t kh = g->kh, kw = g->kw, t4 = 4 * kh * kw, c = g->c;
  uint16x8_t wo = vld1q_u16(wo_tab);
  wo = vaddq_m_n_u16(wo, wo, (uint16_t)t4, 0xFF00); /* lanes 4-7: the next group of 4 channels */
  rqc_t rc = rq_consts(q);
  for (int32_t cb = 0; cb < c4; cb += FB_MVE_DW_CH) {
    int32_t ce = c4 - cb < FB_MVE_DW_CH ? c4 : cb + FB_MVE_DW_CH, c0 = cb;
    if (wn) { /* 3x3, c4 <= 96: one block */
      int32_t ng = c4 / 8;
      switch (c4) {
        case 16: dw3x3n_16(base, wn, rs, q->bias, acc, ng); break;
        case 32: dw3x3n_32(base, wn, rs, q->bias, acc, ng); break;
        case 48: dw3x3n_48(base, wn, rs, q->bias, acc, ng); break;
        case 64: dw3x3n_64(base, wn, rs, q->bias, acc, ng); break;
        default: dw3x3n_96(base, wn, rs, q->bias, acc, ng); break;
      }
      c0 += 8 * ng;
    } else if (kh == 3 && kw == 3) {
      int32_t ng = (ce - c0) / 8;
      if (ng > 0) dw3x3_groups(base + c0, w16 + c0 * 9, c4, rs, q->bias + c0, acc + c0 - cb, ng);
      c0 += 8 * ng;
    } else {
      for (; c0 + 8 <= ce; c0 += 8)
        dw8(base + c0, w16 + c0 * kh * kw, kh, kw, c4, rs, wo, q->bias + c0, 1, acc + c0 - cb);
    }
    if (c0 < ce) /* 4 channels left */
      dw8(base + c0, w16 + c0 * kh * kw, kh, kw, c4, rs, wo, q->bias + c0, 0, acc + c0 - cb);
    int32_t n = (c < ce ? c : ce) - cb;
    int32_t i = 0;
    if (rc.mode == FB_RQ_FAST && n >= 4) {
      i = n & ~3;
      rq_fast1(acc, n >> 2, q->rq + 2 * cb, &rc, y + cb);
    }
    if (i < n) requant_store(acc + i, n - i, q->rq + 2 * (cb + i), &rc, y + cb + i);
  }
}
void fb_mve_dw_row(const int8_t *band, const int16_t *w16, const int16_t *wn, const fb_geom_t *g, int32_t c4,
                   int32_t rs, const fb_crq_t *q, int8_t *y) {
  int32_t c = g->c, ow = g->ow, step = g->sw * c4;
  if (!wn || c4 > FB_MVE_ROWS || (c & 7) || q->mode != FB_RQ_FAST) { /* pixel by pixel */
    for (int32_t ox = 0; ox < ow; ox++, y += c) fb_mve_dw_pixel(band + ox * step, w16, wn, g, c4, rs, q, y);
    return;
  }
  /* three pixels' accumulators, then one requantisation pass sharing the (mult, shift) pairs */
  int32_t acc[3 * FB_MVE_ROWS] __attribute__((aligned(8)));
  rqc_t rc = rq_consts(q);
  int32_t ng = c4 / 8;
  for (int32_t i = 0; i < ow; i += 3) {
    int32_t pix[3] = {i, i + 1 < ow ? i + 1 : i, i + 2 < ow ? i + 2 : i}; /* the last may repeat */
    for (int32_t k = 0; k < 3; k++) {
      const int8_t *base = band + pix[k] * step;
      int32_t *a = acc + k * FB_MVE_ROWS;
      switch (c4) {
        case 16: dw3x3n_16(base, wn, rs, q->bias, a, ng); break;
        case 32: dw3x3n_32(base, wn, rs, q->bias, a, ng); break;
        case 48: dw3x3n_48(base, wn, rs, q->bias, a, ng); break;
        default: dw3x3n_64(base, wn, rs, q->bias, a, ng); break;
      }
    }
    rq_fast3(acc, c / 4, q->rq, &rc, y + pix[0] * c, y + pix[1] * c, y + pix[2] * c);
  }
}

/* Sums of 16 channels (fewer at the end: m, predicated) over the window rows ya..yb, columns xa..xb. */
INLINE void pool16(const int8_t *x, const fb_geom_t *g, int32_t ya, int32_t yb, int32_t xa, int32_t xb, int32_t k,
                   int32_t m, int32_t *sum) {
  int32_t c = g->c;
  mve_pred16_t p[4];
  for (int32_t j = 0; j < 4; j++) p[j] = vctp32q((uint32_t)(m - 4 * j < 0 ? 0 : m - 4 * j));
  int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
  for (int32_t iy = ya; iy < yb; iy++) {
    const int8_t *px = x + (iy * g->w + xa) * c + k;
    for (int32_t ix = xa; ix < xb; ix++, px += c) {
      a0 = vaddq_s32(a0, vldrbq_z_s32(px, p[0]));
      a1 = vaddq_s32(a1, vldrbq_z_s32(px + 4, p[1]));
      a2 = vaddq_s32(a2, vldrbq_z_s32(px + 8, p[2]));
      a3 = vaddq_s32(a3, vldrbq_z_s32(px + 12, p[3]));
    }
  }
  vst1q_s32(sum, a0);
  vst1q_s32(sum + 4, a1);
  vst1q_s32(sum + 8, a2);
  vst1q_s32(sum + 12, a3);
}

void fb_mve_avgpool_s8(const int8_t *x, const fb_geom_t *g, int32_t lo, int32_t hi, int8_t *y) {
  int32_t c = g->c, sum[16] __attribute__((aligned(8)));
  for (int32_t oy = 0; oy < g->oh; oy++)
    for (int32_t ox = 0; ox < g->ow; ox++) {
      int32_t y0 = oy * g->sh - g->pt, x0 = ox * g->sw - g->pl;
      int32_t ya = y0 < 0 ? 0 : y0, yb = y0 + g->kh > g->h ? g->h : y0 + g->kh;
      int32_t xa = x0 < 0 ? 0 : x0, xb = x0 + g->kw > g->w ? g->w : x0 + g->kw;
      int32_t n = (yb - ya) * (xb - xa);
      for (int32_t k = 0; k < c; k += 16) {
        int32_t m = c - k < 16 ? c - k : 16;
        pool16(x, g, ya, yb, xa, xb, k, m, sum);
        for (int32_t j = 0; j < m; j++) { /* kernels_conv.c's rounding (half away from zero) and clamp */
          int32_t s = sum[j], r = n ? (s > 0 ? (s + n / 2) / n : (s - n / 2) / n) : 0;
          *y++ = (int8_t)(r < lo ? lo : r > hi ? hi : r);
        }
      }
    }
}
#else
typedef int fb_kernels_conv_mve_unused_t; /* no Helium on this core: the translation unit stays non-empty */
#endif
