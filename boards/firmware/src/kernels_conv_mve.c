/* Helium (MVE) convolution kernels for the Cortex-M55 (see kernels_conv_mve.h).
 *
 * Convolution / dense: one VMLADAVA.S8 per 16 patch columns of an output channel (int8 x int8 summed
 * into the int32 accumulator: exact). The blob's int16 weights are sign-extended int8 values, so the
 * low byte of each halfword is the int8 weight, and one byte gather with a constant offset vector
 * reads a row's 16 columns in natural order out of the [4 rows][2][4][2] block layout (blob.h); the
 * int8 input (or an int8 patch) needs no widening. A 1x1 convolution without padding reads its pixel
 * straight from the input; other geometries (1-3 input channels included) copy the patch as byte runs
 * with zero-point fill, 16 bytes per predicated vector move.
 * Depthwise: 8 channels in the lanes, VMULLB/VMULLT (int16 x int16 -> int32) per tap on the padded band.
 * Requantisation: 4 channels per vector, integer-identical to fb_mbqm: VQSHL (saturating left shift),
 * VQRDMULH (= SaturatingRoundingDoublingHighMul), then TFLite's rounding divide by 2^e (half away from
 * zero) as VRSHL of q - [q < 0]; zero point with a saturating add, then the activation clamp.
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
  for (int32_t i = 0; i < n; i += 4, acc += 4, rq += 8, y += 4) {
    int32x4x2_t mr = vld2q_s32(rq);
    int32x4_t r = requant(vld1q_s32(acc), mr.val[0], mr.val[1], c);
    if (n - i >= 4) vstrbq_s32(y, r);
    else vstrbq_p_s32(y, r, vctp32q((uint32_t)(n - i)));
  }
}

/* Byte offsets of row 0's 16 columns (4 groups of 4, natural order) in a 4-row block: group gi at
 * 32 gi bytes, column j of the group at halfword (j & 1) * 8 + (j >> 1); row r adds 4 r bytes. */
static const uint8_t row_off[16] = {0, 16, 2, 18, 32, 48, 34, 50, 64, 80, 66, 82, 96, 112, 98, 114};

#define FB_MVE_ROWS 64 /* output channels accumulated before one requantisation pass */

/* All oc outputs of two pixels from their kk-byte int8 patches xa, xb: each gathered weight vector
 * serves both (xb may equal xa, yb may equal ya). */
static void gemv2(const int8_t *xa, const int8_t *xb, int32_t kk, const int8_t *w8, int32_t k4, int32_t oc,
                  const fb_crq_t *q, const rqc_t *c, int8_t *ya, int8_t *yb) {
  const uint8x16_t o0 = vld1q_u8(row_off), o1 = vaddq_n_u8(o0, 4), o2 = vaddq_n_u8(o0, 8), o3 = vaddq_n_u8(o0, 12);
  int32_t acc_a[FB_MVE_ROWS] __attribute__((aligned(8))), acc_b[FB_MVE_ROWS] __attribute__((aligned(8)));
  int32_t nfull = kk >> 4, rem = kk & 15;
  mve_pred16_t p = vctp8q((uint32_t)rem);
  for (int32_t c0 = 0; c0 < oc; c0 += FB_MVE_ROWS) {
    int32_t n = oc - c0 < FB_MVE_ROWS ? oc - c0 : FB_MVE_ROWS;
    const int32_t *bias = q->bias + c0;
    const int8_t *wb = w8 + c0 * 2 * k4;
    for (int32_t r0 = 0; r0 < n; r0 += 4, wb += 8 * k4) {
      int32_t a0 = bias[r0], a1 = bias[r0 + 1], a2 = bias[r0 + 2], a3 = bias[r0 + 3];
      int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
      const int8_t *pa = xa, *pb = xb, *wp = wb;
      for (int32_t i = 0; i < nfull; i++, pa += 16, pb += 16, wp += 128) {
        int8x16_t va = vld1q_s8(pa), vb = vld1q_s8(pb), w;
        w = vldrbq_gather_offset_s8(wp, o0);
        a0 = vmladavaq_s8(a0, w, va);
        b0 = vmladavaq_s8(b0, w, vb);
        w = vldrbq_gather_offset_s8(wp, o1);
        a1 = vmladavaq_s8(a1, w, va);
        b1 = vmladavaq_s8(b1, w, vb);
        w = vldrbq_gather_offset_s8(wp, o2);
        a2 = vmladavaq_s8(a2, w, va);
        b2 = vmladavaq_s8(b2, w, vb);
        w = vldrbq_gather_offset_s8(wp, o3);
        a3 = vmladavaq_s8(a3, w, va);
        b3 = vmladavaq_s8(b3, w, vb);
      }
      if (rem) { /* lanes past kk are zeroed on both sides (and never read past the weights) */
        int8x16_t va = vldrbq_z_s8(pa, p), vb = vldrbq_z_s8(pb, p), w;
        w = vldrbq_gather_offset_z_s8(wp, o0, p);
        a0 = vmladavaq_s8(a0, w, va);
        b0 = vmladavaq_s8(b0, w, vb);
        w = vldrbq_gather_offset_z_s8(wp, o1, p);
        a1 = vmladavaq_s8(a1, w, va);
        b1 = vmladavaq_s8(b1, w, vb);
        w = vldrbq_gather_offset_z_s8(wp, o2, p);
        a2 = vmladavaq_s8(a2, w, va);
        b2 = vmladavaq_s8(b2, w, vb);
        w = vldrbq_gather_offset_z_s8(wp, o3, p);
        a3 = vmladavaq_s8(a3, w, va);
        b3 = vmladavaq_s8(b3, w, vb);
      }
      acc_a[r0] = a0;
      acc_a[r0 + 1] = a1;
      acc_a[r0 + 2] = a2;
      acc_a[r0 + 3] = a3;
      acc_b[r0] = b0;
      acc_b[r0 + 1] = b1;
      acc_b[r0 + 2] = b2;
      acc_b[r0 + 3] = b3;
    }
    requant_store(acc_a, n, q->rq + 2 * c0, c, ya + c0);
    requant_store(acc_b, n, q->rq + 2 * c0, c, yb + c0);
  }
}

INLINE void vcopy(int8_t *d, const int8_t *s, int32_t n) {
  for (; n >= 16; n -= 16, d += 16, s += 16) vst1q_s8(d, vld1q_s8(s));
  if (n > 0) {
    mve_pred16_t p = vctp8q((uint32_t)n);
    vstrbq_p_s8(d, vldrbq_z_s8(s, p), p);
  }
}

INLINE void vfill(int8_t *d, int8x16_t v, int32_t n) {
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
  for (int32_t ky = 0; ky < g->kh; ky++, d += run) {
    int32_t iy = iy0 + ky;
    if (iy < 0 || iy >= g->h) {
      vfill(d, zp, run);
      continue;
    }
    vfill(d, zp, a);
    vcopy(d + a, x + (iy * g->w + ix0 + kx0) * ci, b - a);
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
  int8_t *pa = scratch, *pb = scratch + k4; /* two patches: scratch holds 3 * k4 bytes (blob.h) */
  for (int32_t i = 0; i < npix; i += 2) {
    int32_t j = i + 1 < npix ? i + 1 : i; /* an odd last pixel is computed twice */
    int32_t oya = i / g->ow, oxa = i % g->ow, oyb = j / g->ow, oxb = j % g->ow;
    const int8_t *xa, *xb;
    if (pointwise) {
      xa = x + ((oya * g->sh) * g->w + oxa * g->sw) * ci;
      xb = x + ((oyb * g->sh) * g->w + oxb * g->sw) * ci;
    } else {
      patch(x, g, oya, oxa, zp, pa);
      patch(x, g, oyb, oxb, zp, pb);
      xa = pa;
      xb = pb;
    }
    gemv2(xa, xb, kk, w8, k4, oc, q, &c, y + i * oc, y + j * oc);
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

#define FB_MVE_DW_CH 256 /* channels per requantisation pass */

void fb_mve_dw_pixel(const int8_t *base, const int16_t *w16, const fb_geom_t *g, int32_t c4, int32_t rs,
                     const fb_crq_t *q, int8_t *y) {
  static const uint16_t wo_tab[8] = {0, 2, 1, 3, 0, 2, 1, 3};
  int32_t acc[FB_MVE_DW_CH] __attribute__((aligned(8)));
  int32_t kh = g->kh, kw = g->kw, t4 = 4 * kh * kw, c = g->c;
  uint16x8_t wo = vld1q_u16(wo_tab);
  wo = vaddq_m_n_u16(wo, wo, (uint16_t)t4, 0xFF00); /* lanes 4-7: the next group of 4 channels */
  rqc_t rc = rq_consts(q);
  for (int32_t cb = 0; cb < c4; cb += FB_MVE_DW_CH) {
    int32_t ce = c4 - cb < FB_MVE_DW_CH ? c4 : cb + FB_MVE_DW_CH, c0 = cb;
    if (kh == 3 && kw == 3) {
      for (; c0 + 8 <= ce; c0 += 8) dw8(base + c0, w16 + c0 * 9, 3, 3, c4, rs, wo, q->bias + c0, 1, acc + c0 - cb);
    } else {
      for (; c0 + 8 <= ce; c0 += 8)
        dw8(base + c0, w16 + c0 * kh * kw, kh, kw, c4, rs, wo, q->bias + c0, 1, acc + c0 - cb);
    }
    if (c0 < ce) /* 4 channels left */
      dw8(base + c0, w16 + c0 * kh * kw, kh, kw, c4, rs, wo, q->bias + c0, 0, acc + c0 - cb);
    int32_t n = (c < ce ? c : ce) - cb;
    requant_store(acc, n, q->rq + 2 * cb, &rc, y + cb);
  }
}
#else
typedef int fb_kernels_conv_mve_unused_t; /* no Helium on this core: the translation unit stays non-empty */
#endif
