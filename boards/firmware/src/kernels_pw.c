/* Pointwise convolutions of pruned (CSR) and Monarch-factored CNN layers; see kernels_pw.h. */
#include "kernels_pw.h"

#include "blob.h"
#include "kernels.h"

#if defined(__ARM_FEATURE_DSP) && !defined(FB_PORTABLE)
#include <arm_acle.h>
#define FB_PW_DSP 1
#else
#define FB_PW_DSP 0
#endif

#define INLINE static inline __attribute__((always_inline))

static uint32_t ceil4(uint32_t n) { return (n + 3u) & ~3u; }

uint32_t fb_pw_scratch(uint8_t kind, uint32_t aux, uint32_t cin) {
  if (kind == FB_OP_PWCONV_CSR) return 2u * FB_PW_TILE * ceil4(cin);
  return 2u * cin + 2u * (aux & 0xFFFFu) * (aux >> 16) + 16u; /* + the Monarch kernel's overrun margin */
}

const char *fb_pw_check(uint8_t kind, const uint8_t *p, uint32_t size, uint32_t aux, uint32_t cin, uint32_t cout,
                        uint16_t flags, int32_t zp_out, int32_t act_min, uint32_t *a, uint32_t *b) {
  const int32_t *w32 = (const int32_t *)(const void *)p;
  if (kind == FB_OP_PWCONV_CSR) {
    uint32_t oc4 = ceil4(cout), nnz = aux;
    *a = size;
    *b = 12u * oc4 + 4u * (cout + 1u) + 4u * nnz;
    if (nnz > (size >> 2) || size != *b) return "pwconv_csr parameter size mismatch";
    const int32_t *bias = w32, *rq = w32 + oc4;
    const uint32_t *rowptr = (const uint32_t *)(const void *)(rq + 2u * oc4), *ent = rowptr + cout + 1u;
    int fast = (flags & FB_OPF_FAST) != 0;
    if (fast && (flags & FB_OPF_SINGLE)) return "fast and single-rounding flags together";
    if (rowptr[0] != 0 || rowptr[cout] != nnz) {
      *a = rowptr[0];
      *b = rowptr[cout];
      return "pwconv_csr row pointers must run from 0 to nnz";
    }
    for (uint32_t r = 0; r < cout; r++) {
      *a = r;
      *b = (uint32_t)rq[2 * r + 1];
      if (rowptr[r + 1] < rowptr[r]) return "pwconv_csr row pointers not increasing";
      if (rq[2 * r] < 0) return "negative requant multiplier";
      if (fast ? (rq[2 * r + 1] < 0 || rq[2 * r + 1] > 30) : (rq[2 * r + 1] < -31 || rq[2 * r + 1] > 30))
        return "requant shift out of range";
      int64_t s = bias[r] < 0 ? -(int64_t)bias[r] : bias[r];
      for (uint32_t k = rowptr[r]; k < rowptr[r + 1]; k++) {
        int32_t v = (int32_t)ent[k] >> 16;
        *b = ent[k] & 0xFFFFu;
        if (*b >= cin) return "pwconv_csr column out of range (row, column)";
        if (v < -128 || v > 127) return "pwconv_csr weight outside int8 (row, column)";
        s += 128 * (int64_t)(v < 0 ? -v : v);
      }
      if (fast && s >= (1 << 30)) return "fast-requant flag on a row whose accumulator can reach 2^30 (row, shift)";
    }
    return 0;
  }
  uint32_t k = aux & 0xFFFFu, q = aux >> 16;
  *a = k;
  *b = q;
  if (!k || !q || cin % k || cout % q) return "pwconv_monarch blocks do not divide the channels";
  uint32_t pp = cin / k, ss = cout / q;
  if (k % 4u || q % 4u || pp % 4u || ss % 4u) return "pwconv_monarch block sizes must be multiples of 4";
  if (flags) return "pwconv_monarch takes no flags";
  *a = size;
  *b = 12u * cout + 4u * k * q + 4u + k * q * pp + ceil4(q * ss * k);
  if (size != *b) return "pwconv_monarch parameter size mismatch";
  *a = (uint32_t)act_min;
  *b = (uint32_t)zp_out;
  if (act_min != -128 && act_min != (zp_out > -128 ? zp_out : -128)) /* the Monarch kernel's ReLU */
    return "pwconv_monarch clamps below at -128 or at its zero point (ReLU) only";
  const int32_t *mult = w32 + cout, *shift = w32 + 2u * cout;
  for (uint32_t r = 0; r < cout; r++) {
    *a = r;
    *b = (uint32_t)shift[r];
    if (mult[r] < 0 || shift[r] < -31 || shift[r] > 30) return "requant multiplier or shift out of range";
  }
  uint32_t sh1 = (uint32_t)w32[3u * cout + k * q];
  *a = sh1;
  *b = 31;
  return sh1 > 31u ? "pwconv_monarch shift out of range" : 0;
}

/* Transpose n <= 4 pixels (x0..x3 at a stride of cin; absent ones repeat x0) into the channel-major
 * int16 tile: xt[2c] = (x0[c], x1[c]), xt[2c+1] = (x2[c], x3[c]). */
static void to_tile(const int8_t *x0, int32_t n, int32_t cin, uint32_t *xt) {
  const int8_t *x1 = n > 1 ? x0 + cin : x0, *x2 = n > 2 ? x0 + 2 * cin : x0, *x3 = n > 3 ? x0 + 3 * cin : x0;
  for (int32_t c = 0; c < cin; c++) {
    xt[2 * c] = (uint16_t)x0[c] | (uint32_t)x1[c] << 16;
    xt[2 * c + 1] = (uint16_t)x2[c] | (uint32_t)x3[c] << 16;
  }
}

/* Requantisation of one accumulator; the op's constants arrive in registers (a store through int8_t
 * would otherwise make the compiler reload them from *q after every output). */
INLINE int8_t rq_one(int32_t acc, int32_t m, int32_t s, int32_t zp, int32_t lo, int32_t hi, int32_t mode) {
  int32_t v = mode == FB_RQ_FAST     ? fb_mbqm_fast(acc, m, s)
              : mode == FB_RQ_SINGLE ? fb_rq_single(acc, m, s)
                                     : fb_mbqm(acc, m, s);
  v += zp;
  v = v < lo ? lo : v;
  return (int8_t)(v > hi ? hi : v);
}

/* One tile of n <= 4 pixels: to_tile, then every row's nonzeros against the tile's two words. */
INLINE void csr_tile(const int8_t *x0, int32_t n, int32_t cin, int32_t cout, const int32_t *bias, const int32_t *rq,
                     const uint32_t *rowptr, const uint32_t *ent, const fb_crq_t *q, uint32_t *xt, int8_t *y,
                     int32_t mode) {
  to_tile(x0, n, cin, xt);
  const int32_t zp = q->zp_out, lo = q->lo, hi = q->hi;
  const uint32_t *e = ent;
  for (int32_t r = 0; r < cout; r++) {
    int32_t a0 = bias[r], a1 = a0, a2 = a0, a3 = a0;
    const uint32_t *end = ent + rowptr[r + 1];
    for (; e < end; e++) {
      uint32_t v = *e;
      const uint32_t *xp = xt + 2u * (v & 0xFFFFu);
      uint32_t u01 = xp[0], u23 = xp[1];
#if FB_PW_DSP
      a0 = __smlatb((int32_t)v, (int32_t)u01, a0);
      a1 = __smlatt((int32_t)v, (int32_t)u01, a1);
      a2 = __smlatb((int32_t)v, (int32_t)u23, a2);
      a3 = __smlatt((int32_t)v, (int32_t)u23, a3);
#else
      int32_t w = (int32_t)v >> 16;
      a0 += w * (int16_t)u01;
      a1 += w * ((int32_t)u01 >> 16);
      a2 += w * (int16_t)u23;
      a3 += w * ((int32_t)u23 >> 16);
#endif
    }
    int32_t m = rq[2 * r], s = rq[2 * r + 1];
    int8_t *yr = y + r;
    if (n == 4) { /* the common case without per-pixel tests */
      yr[0] = rq_one(a0, m, s, zp, lo, hi, mode);
      yr[cout] = rq_one(a1, m, s, zp, lo, hi, mode);
      yr[2 * cout] = rq_one(a2, m, s, zp, lo, hi, mode);
      yr[3 * cout] = rq_one(a3, m, s, zp, lo, hi, mode);
      continue;
    }
    yr[0] = rq_one(a0, m, s, zp, lo, hi, mode);
    if (n > 1) yr[cout] = rq_one(a1, m, s, zp, lo, hi, mode);
    if (n > 2) yr[2 * cout] = rq_one(a2, m, s, zp, lo, hi, mode);
  }
}

void fb_pwconv_csr_s8(const int8_t *x, int32_t npix, int32_t cin, int32_t cout, const int32_t *params, const fb_crq_t *q,
                      int16_t *scratch, int8_t *y) {
  uint32_t oc4 = ceil4((uint32_t)cout);
  const int32_t *bias = params, *rq = params + oc4;
  const uint32_t *rowptr = (const uint32_t *)(const void *)(rq + 2u * oc4), *ent = rowptr + cout + 1;
  uint32_t *xt = (uint32_t *)(void *)scratch;
  for (int32_t p = 0; p < npix; p += FB_PW_TILE) {
    int32_t n = npix - p < FB_PW_TILE ? npix - p : FB_PW_TILE;
    const int8_t *xp = x + p * cin;
    int8_t *yp = y + p * cout;
    if (q->mode == FB_RQ_FAST) /* the mode is constant per op: one specialised loop each */
      csr_tile(xp, n, cin, cout, bias, rq, rowptr, ent, q, xt, yp, FB_RQ_FAST);
    else if (q->mode == FB_RQ_SINGLE)
      csr_tile(xp, n, cin, cout, bias, rq, rowptr, ent, q, xt, yp, FB_RQ_SINGLE);
    else
      csr_tile(xp, n, cin, cout, bias, rq, rowptr, ent, q, xt, yp, FB_RQ_EXACT);
  }
}

void fb_pwconv_monarch_s8(const int8_t *x, int32_t npix, int32_t cin, int32_t cout, const int32_t *params, uint32_t aux,
                          int32_t zp_out, int32_t lo, int32_t hi, int16_t *scratch, int8_t *y) {
  int32_t k = (int32_t)(aux & 0xFFFFu), qq = (int32_t)(aux >> 16), pp = cin / k, ss = cout / qq;
  const int32_t *mult = params + cout, *shift = params + 2 * cout, *bias1 = params + 3 * cout;
  int32_t uniform = 1;
  for (int32_t r = 1; r < cout; r++) uniform &= mult[r] == mult[0] && shift[r] == shift[0];
  fb_rq_t rq = {params, mult, shift, zp_out, lo, hi, uniform};
  int32_t sh1 = bias1[k * qq];
  const int8_t *w1 = (const int8_t *)(const void *)(bias1 + k * qq + 1), *w2 = w1 + k * qq * pp;
  int16_t *x16 = scratch, *h16 = scratch + cin;
  for (int32_t p = 0; p < npix; p++) {
    int8_t *yp = y + p * cout;
    fb_monarch_s8(x + p * cin, x16, h16, k, pp, qq, ss, bias1, sh1, w1, w2, &rq, yp);
    if (hi < 127)
      for (int32_t r = 0; r < cout; r++) yp[r] = yp[r] > hi ? (int8_t)hi : yp[r];
  }
}
