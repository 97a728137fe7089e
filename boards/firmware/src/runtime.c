/* Blob validation and the layer loop. Activations ping-pong between two int8 buffers. */
#include "runtime.h"

#include "board.h"
#include "crc32.h"
#include "kernels.h"
#include "runtime_graph.h"
#include "sb.h"

const char fb_kinds[] = "dense,csr,bsr4,monarch,butterfly,softmax,argmax,relu,conv2d,dwconv2d,maxpool,avgpool,mean,add,reshape,pwconv_csr,pwconv_monarch";

static int8_t act_a[FB_ACT_MAX] __attribute__((aligned(8)));
static int8_t act_b[FB_ACT_MAX] __attribute__((aligned(8)));
static int16_t x16[FB_ACT_MAX + 8] __attribute__((aligned(8)));
static int16_t h16[FB_ACT_MAX + 8] __attribute__((aligned(8)));

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint32_t pad4(uint32_t n) { return (n + 3u) & ~3u; }

static int fail(char *err, int errlen, const char *what, int at, uint32_t a, uint32_t b) {
  return sb_error(err, errlen, "layer", at, what, a, b);
}

/* Expected parameter bytes of a layer; 0xFFFFFFFF for an unknown kind. */
static uint32_t param_size(const fb_layer_t *L) {
  uint32_t rq = 12u * L->out_dim;
  switch (L->kind) {
    case FB_DENSE:
      return rq + pad4(L->in_dim * L->out_dim);
    case FB_CSR:
      return rq + 4u * (L->out_dim + 1u) + pad4(2u * L->aux) + pad4(L->aux);
    case FB_BSR4:
      return rq + 4u * (L->out_dim / 4u + 1u) + pad4(2u * L->aux) + 16u * L->aux;
    case FB_MONARCH: {
      uint32_t k = L->aux & 0xFFFFu, q = L->aux >> 16;
      if (!k || !q || L->in_dim % k || L->out_dim % q) return 0xFFFFFFFEu;
      return rq + 4u * k * q + 4u + k * q * (L->in_dim / k) + pad4(q * (L->out_dim / q) * k);
    }
    case FB_BUTTERFLY:
      if (L->aux == 0 || L->aux > 15 || L->in_dim != (1u << L->aux) || L->out_dim != L->in_dim) return 0xFFFFFFFEu;
      return rq + 4u * L->aux + 4u * L->aux * (L->in_dim / 2u);
    case FB_SOFTMAX:
    case FB_ARGMAX:
      return 0;
    default:
      return 0xFFFFFFFFu;
  }
}

static int check_layer(const uint8_t *base, const fb_layer_t *L, int i, char *err, int errlen) {
  const uint8_t *p = base + L->offset;
  uint32_t out = L->out_dim, in = L->in_dim;
  if (L->kind == FB_CSR) {
    const uint8_t *rp = p + 12u * out;
    const uint16_t *col = (const uint16_t *)(const void *)(rp + 4u * (out + 1u));
    uint32_t prev = 0;
    for (uint32_t r = 0; r <= out; r++) {
      uint32_t v = rd32(rp + 4u * r);
      if (v < prev || (r == 0 && v != 0)) return fail(err, errlen, "csr row pointers not increasing", i, r, v);
      prev = v;
    }
    if (prev != L->aux) return fail(err, errlen, "csr nnz mismatch", i, prev, L->aux);
    for (uint32_t k = 0; k < L->aux; k++)
      if (col[k] >= in) return fail(err, errlen, "csr column out of range", i, k, col[k]);
  } else if (L->kind == FB_BSR4) {
    if (in % 4u || out % 4u) return fail(err, errlen, "bsr4 needs dims divisible by 4", i, in, out);
    const uint8_t *bp = p + 12u * out;
    const uint16_t *bcol = (const uint16_t *)(const void *)(bp + 4u * (out / 4u + 1u));
    uint32_t prev = 0;
    for (uint32_t r = 0; r <= out / 4u; r++) {
      uint32_t v = rd32(bp + 4u * r);
      if (v < prev || (r == 0 && v != 0)) return fail(err, errlen, "bsr4 block pointers not increasing", i, r, v);
      prev = v;
    }
    if (prev != L->aux) return fail(err, errlen, "bsr4 block count mismatch", i, prev, L->aux);
    for (uint32_t k = 0; k < L->aux; k++)
      if (bcol[k] >= in / 4u) return fail(err, errlen, "bsr4 block column out of range", i, k, bcol[k]);
  }
  if (L->kind == FB_MONARCH) {
    uint32_t k = L->aux & 0xFFFFu, q = L->aux >> 16, pp = in / k, ss = out / q;
    if (k % 4u || q % 4u || pp % 4u || ss % 4u) return fail(err, errlen, "monarch block sizes must be multiples of 4", i, k, q);
    if (k * q > FB_ACT_MAX) return fail(err, errlen, "monarch intermediate wider than this board allows", i, k * q, FB_ACT_MAX);
    uint32_t sh1 = rd32(p + 12u * out + 4u * k * q);
    if (sh1 > 31u) return fail(err, errlen, "monarch shift out of range", i, sh1, 31);
  }
  if (L->kind == FB_BUTTERFLY) {
    const uint8_t *sp = p + 12u * out;
    for (uint32_t l = 0; l < L->aux; l++)
      if (rd32(sp + 4u * l) > 31u) return fail(err, errlen, "butterfly shift out of range", i, l, rd32(sp + 4u * l));
  }
  if (L->kind == FB_DENSE || L->kind == FB_CSR || L->kind == FB_BSR4 || L->kind == FB_MONARCH || L->kind == FB_BUTTERFLY) {
    const int32_t *mu = (const int32_t *)(const void *)(p + 4u * out);
    const int32_t *sh = (const int32_t *)(const void *)(p + 8u * out);
    for (uint32_t r = 0; r < out; r++) {
      if (sh[r] < -32 || sh[r] > 30) return fail(err, errlen, "requant shift outside [-32, 30]", i, r, (uint32_t)sh[r]);
      if ((L->flags & FB_FLAG_UNIFORM_RQ) && (mu[r] != mu[0] || sh[r] != sh[0]))
        return fail(err, errlen, "uniform-requant flag on a per-channel layer", i, r, 0);
    }
  }
  return 0;
}

int fb_model_load(const uint8_t *blob, uint32_t len, fb_model_t *m, char *err, int errlen) {
  m->h = 0;
  if (len < FB_HEADER_SIZE) return fail(err, errlen, "blob shorter than its header", -1, len, FB_HEADER_SIZE);
  const fb_header_t *h = (const fb_header_t *)(const void *)blob;
  if (h->magic != FB_MAGIC) return fail(err, errlen, "bad magic, not a frugalbench blob", -1, h->magic, FB_MAGIC);
  if (h->version == FB_VERSION2) return fb_graph_load(blob, len, m, err, errlen);
  if (h->version != FB_VERSION) return fail(err, errlen, "unsupported blob version", -1, h->version, FB_VERSION);
  if (h->header_size != FB_HEADER_SIZE) return fail(err, errlen, "bad header size", -1, h->header_size, FB_HEADER_SIZE);
  if (h->total_size > len || h->total_size < FB_HEADER_SIZE + 32u * h->n_layers)
    return fail(err, errlen, "bad total size", -1, h->total_size, len);
  uint32_t crc = fb_crc32_update(0, blob + 16, h->total_size - 16u);
  if (crc != h->crc32) return fail(err, errlen, "blob CRC mismatch (got, expected)", -1, crc, h->crc32);
  if (h->n_layers == 0) return fail(err, errlen, "no layers", -1, 0, 0);
  if (h->max_dim > FB_ACT_MAX) return fail(err, errlen, "activation wider than this board allows", -1, h->max_dim, FB_ACT_MAX);
  const fb_layer_t *Ls = (const fb_layer_t *)(const void *)(blob + FB_HEADER_SIZE);
  uint32_t dim = h->in_dim;
  int head = 0;
  for (int i = 0; i < h->n_layers; i++) {
    const fb_layer_t *L = &Ls[i];
    if (head) return fail(err, errlen, "layer after an output head", i, L->kind, 0);
    if (L->in_dim != dim) return fail(err, errlen, "input width does not chain", i, L->in_dim, dim);
    if (L->out_dim > h->max_dim || L->in_dim > h->max_dim) return fail(err, errlen, "width above max_dim", i, L->out_dim, h->max_dim);
    uint32_t need = param_size(L);
    if (need == 0xFFFFFFFFu) return fail(err, errlen, "unsupported layer kind (this firmware runs: dense,csr,bsr4,monarch,butterfly,softmax,argmax)", i, L->kind, 0);
    if (need == 0xFFFFFFFEu) return fail(err, errlen, "inconsistent block structure", i, L->aux, L->in_dim);
    if (L->size != need) return fail(err, errlen, "parameter size mismatch", i, L->size, need);
    if ((L->offset & 3u) || L->offset > h->total_size || L->size > h->total_size - L->offset)
      return fail(err, errlen, "parameters outside the blob", i, L->offset, L->size);
    if (L->kind == FB_SOFTMAX || L->kind == FB_ARGMAX) {
      if (L->out_dim != L->in_dim) return fail(err, errlen, "head changes width", i, L->in_dim, L->out_dim);
      head = L->kind;
    }
    if (check_layer(blob, L, i, err, errlen)) return -1;
    dim = L->out_dim;
  }
  if (dim != h->out_dim) return fail(err, errlen, "output width mismatch", -1, dim, h->out_dim);
  m->base = blob;
  m->h = h;
  m->layers = Ls;
  m->head = head;
  m->graph = 0;
  return 0;
}

static void run_layer(const uint8_t *base, const fb_layer_t *L, const int8_t *x, int8_t *y) {
  const uint8_t *p = base + L->offset;
  uint32_t out = L->out_dim, in = L->in_dim;
  fb_rq_t q;
  q.bias = (const int32_t *)(const void *)p;
  q.mult = q.bias + out;
  q.shift = q.mult + out;
  q.zp_out = L->zp_out;
  q.lo = (L->act == 1 && L->zp_out > -128) ? L->zp_out : -128;
  q.hi = 127;
  q.uniform = (L->flags & FB_FLAG_UNIFORM_RQ) != 0;
  const uint8_t *rest = p + 12u * out;
  switch (L->kind) {
    case FB_DENSE:
      fb_dense_s8(x, x16, (const int8_t *)rest, (int)in, (int)out, &q, y);
      break;
    case FB_CSR: {
      const uint32_t *rowptr = (const uint32_t *)(const void *)rest;
      const uint16_t *col = (const uint16_t *)(const void *)(rest + 4u * (out + 1u));
      const int8_t *val = (const int8_t *)(rest + 4u * (out + 1u) + pad4(2u * L->aux));
      fb_csr_s8(x, rowptr, col, val, (int)out, &q, y);
      break;
    }
    case FB_BSR4: {
      const uint32_t *bptr = (const uint32_t *)(const void *)rest;
      const uint16_t *bcol = (const uint16_t *)(const void *)(rest + 4u * (out / 4u + 1u));
      const int8_t *w = (const int8_t *)(rest + 4u * (out / 4u + 1u) + pad4(2u * L->aux));
      fb_bsr4_s8(x, x16, bptr, bcol, w, (int)in, (int)out, &q, y);
      break;
    }
    case FB_MONARCH: {
      uint32_t k = L->aux & 0xFFFFu, qq = L->aux >> 16, pp = in / k, ss = out / qq;
      const int32_t *bias1 = (const int32_t *)(const void *)rest;
      int32_t sh1 = (int32_t)rd32(rest + 4u * k * qq);
      const int8_t *w1 = (const int8_t *)(rest + 4u * k * qq + 4u);
      const int8_t *w2 = w1 + k * qq * pp;
      fb_monarch_s8(x, x16, h16, (int)k, (int)pp, (int)qq, (int)ss, bias1, sh1, w1, w2, &q, y);
      break;
    }
    case FB_BUTTERFLY: {
      const int32_t *sh = (const int32_t *)(const void *)rest;
      const uint32_t *tw = (const uint32_t *)(const void *)(rest + 4u * L->aux);
      fb_butterfly_s8(x, x16, h16, (int)in, (int)L->aux, L->zp_in, sh, tw, &q, y);
      break;
    }
    default: /* heads: identity on the int8 values */
      for (uint32_t i = 0; i < out; i++) y[i] = x[i];
      break;
  }
}

/* Word copy when both ends are 4-byte aligned (the usual case), else bytes. */
static void copy_s8(int8_t *dst, const int8_t *src, uint32_t n) {
  if ((((uintptr_t)dst | (uintptr_t)src) & 3u) == 0) {
    uint32_t *d = (uint32_t *)(void *)dst;
    const uint32_t *s = (const uint32_t *)(const void *)src;
    for (uint32_t i = 0; i < n / 4u; i++) d[i] = s[i];
    for (uint32_t i = n & ~3u; i < n; i++) dst[i] = src[i];
  } else {
    for (uint32_t i = 0; i < n; i++) dst[i] = src[i];
  }
}

void fb_model_run(const fb_model_t *m, const int8_t *in, int8_t *out) {
  const fb_header_t *h = m->h;
  if (m->graph) {
    fb_graph_run(m, in, out);
    return;
  }
  copy_s8(act_b, in, h->in_dim); /* aligned copy: kernels load words */
  const int8_t *x = act_b;
  int8_t *bufs[2] = {act_a, act_b};
  int cur = 0;
  for (int i = 0; i < h->n_layers; i++) {
    const fb_layer_t *L = &m->layers[i];
    if (L->kind == FB_SOFTMAX || L->kind == FB_ARGMAX) continue;
    int8_t *y = bufs[cur];
    run_layer(m->base, L, x, y);
    x = y;
    cur ^= 1;
  }
  copy_s8(out, x, h->out_dim);
}
