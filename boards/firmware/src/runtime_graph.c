/* Blob version 2: validation of an int8 operator graph and its execution in one static arena.
 * Every tensor lives at its planned offset in fb_arena; ops run in table order (blob.h). */
#include "runtime_graph.h"

#include "board.h"
#include "crc32.h"
#include "kernels_conv.h"
#include "kernels_pw.h"
#include "sb.h"

#ifndef FB_OUT_MAX
#define FB_OUT_MAX FB_ACT_MAX
#endif

static int8_t fb_arena[FB_ARENA_MAX] __attribute__((aligned(8)));
static int8_t fb_scratch[FB_SCRATCH_MAX] __attribute__((aligned(8)));

static int fail(char *err, int errlen, const char *what, int at, uint32_t a, uint32_t b) {
  return sb_error(err, errlen, "op", at, what, a, b);
}

static uint32_t ceil4(uint32_t n) { return (n + 3u) & ~3u; }

static const fb_tensor_t *tensors(const uint8_t *blob) {
  return (const fb_tensor_t *)(const void *)(blob + FB_GRAPH_HEADER_SIZE);
}

/* Geometry of a windowed op from its tensors and attributes. */
static void geom(const fb_op_t *o, const fb_tensor_t *ti, const fb_tensor_t *to, fb_geom_t *g) {
  g->h = ti->h;
  g->w = ti->w;
  g->c = ti->c;
  g->oh = to->h;
  g->ow = to->w;
  g->oc = to->c;
  g->kh = o->kh;
  g->kw = o->kw;
  g->sh = o->stride_h;
  g->sw = o->stride_w;
  g->pt = o->pad_top;
  g->pl = o->pad_left;
  g->zp_in = ti->zp;
}

/* Scratch bytes an op needs (blob.h). */
static uint32_t scratch_need(const fb_op_t *o, const fb_tensor_t *ti, const fb_tensor_t *to) {
  if (o->kind == FB_OP_CONV2D || o->kind == FB_OP_DENSE) return 3u * o->k4;
  if (o->kind == FB_OP_PWCONV_CSR || o->kind == FB_OP_PWCONV_MONARCH) return fb_pw_scratch(o->kind, o->k4, ti->c);
  if (o->kind == FB_OP_DWCONV2D) { /* a band of up to 4 output rows (FB_DW_BAND in kernels_conv.c) */
    uint32_t rows = ((to->h < 4u ? to->h : 4u) - 1u) * o->stride_h + o->kh;
    return rows * ((uint32_t)(to->w - 1u) * o->stride_w + o->kw) * ceil4(ti->c);
  }
  return 0;
}

static int overlaps(const fb_tensor_t *a, const fb_tensor_t *b) {
  return a->offset < b->offset + b->size && b->offset < a->offset + a->size;
}

/* A window of kh x kw at this stride and padding maps an input extent n onto the output extent on. */
static int window_ok(uint32_t n, uint32_t on, uint32_t k, uint32_t s, uint32_t pad) {
  if (!k || !s || !on || pad >= k) return 0;
  uint32_t span = (on - 1u) * s + k; /* padded extent read */
  return span + (s - 1u) >= n + pad && span <= n + pad + (k - 1u) && (on - 1u) * s < n + pad;
}

/* |bias| + 128 * sum|w| < 2^30 for every channel, and shift <= -1: FB_OPF_FAST is true. */
static int fast_ok(const int32_t *bias, const int32_t *rq, const int16_t *w16, uint32_t oc, uint32_t c4,
                   uint32_t per_ch, int dw) {
  for (uint32_t r = 0; r < oc; r++) {
    if (rq[2 * r + 1] < 0 || rq[2 * r + 1] > 30) return 0; /* e - 1 */
    int64_t s = bias[r] < 0 ? -(int64_t)bias[r] : bias[r];
    for (uint32_t k = 0; k < per_ch; k++) {
      int32_t v;
      if (dw) { /* w16[g][tap][c, c+2, c+1, c+3] */
        static const uint8_t pos[4] = {0, 2, 1, 3};
        v = w16[((r / 4u) * per_ch + k) * 4u + pos[r & 3u]];
      } else { /* w16[rb][group][2][4 rows][2] */
        uint32_t g = k / 4u, j = k & 3u;
        v = w16[((r / 4u) * (c4 / 4u) + g) * 16u + (j & 1u) * 8u + (r & 3u) * 2u + (j >> 1)];
      }
      s += 128 * (int64_t)(v < 0 ? -v : v);
    }
    if (s >= (1 << 30)) return 0;
  }
  return 1;
}

static int check_op(const uint8_t *blob, const fb_header_t *h, const fb_graph_t *G, int i, const fb_op_t *o,
                    const uint8_t *made, char *err, int errlen) {
  const fb_tensor_t *T = tensors(blob);
  if (o->in0 >= G->n_tensors || o->out >= G->n_tensors || (o->n_in == 2 && o->in1 >= G->n_tensors))
    return fail(err, errlen, "tensor id out of range", i, o->in0, o->out);
  if (o->n_in != (o->kind == FB_OP_ADD ? 2u : 1u)) return fail(err, errlen, "wrong number of inputs", i, o->n_in, 0);
  if (!made[o->in0] || (o->n_in == 2 && !made[o->in1]))
    return fail(err, errlen, "input tensor used before an op makes it", i, o->in0, o->in1);
  if (made[o->out]) return fail(err, errlen, "output tensor written twice", i, o->out, 0);
  const fb_tensor_t *ti = &T[o->in0], *to = &T[o->out];
  if (o->act_min < -128 || o->act_max > 127 || o->act_min > o->act_max)
    return fail(err, errlen, "activation range outside int8", i, (uint32_t)o->act_min, (uint32_t)o->act_max);
  if ((o->offset & 3u) || o->offset > h->total_size || o->size > h->total_size - o->offset)
    return fail(err, errlen, "parameters outside the blob", i, o->offset, o->size);
  uint32_t need = 0, oc4 = ceil4(to->c);
  int windowed = o->kind == FB_OP_CONV2D || o->kind == FB_OP_DWCONV2D || o->kind == FB_OP_MAXPOOL ||
                 o->kind == FB_OP_AVGPOOL;
  if (windowed) {
    if (ti->rank != 3 || to->rank != 3) return fail(err, errlen, "windowed op needs (H, W, C) tensors", i, ti->rank, to->rank);
    if (!window_ok(ti->h, to->h, o->kh, o->stride_h, o->pad_top))
      return fail(err, errlen, "output height does not follow from input, kernel, stride, padding", i, ti->h, to->h);
    if (!window_ok(ti->w, to->w, o->kw, o->stride_w, o->pad_left))
      return fail(err, errlen, "output width does not follow from input, kernel, stride, padding", i, ti->w, to->w);
    if (o->kind != FB_OP_CONV2D && ti->c != to->c) return fail(err, errlen, "channels change", i, ti->c, to->c);
  }
  switch (o->kind) {
    case FB_OP_CONV2D:
    case FB_OP_DENSE: {
      uint32_t kk = o->kind == FB_OP_DENSE ? ti->size : (uint32_t)o->kh * o->kw * ti->c;
      if (o->kind == FB_OP_DENSE && (to->rank != 1 || o->kh != 1 || o->kw != 1))
        return fail(err, errlen, "dense needs a vector output", i, to->rank, 0);
      if (o->k4 != ceil4(kk)) return fail(err, errlen, "patch length k4 mismatch", i, o->k4, ceil4(kk));
      need = 12u * oc4 + 2u * oc4 * o->k4;
      break;
    }
    case FB_OP_DWCONV2D:
      need = 12u * oc4 + 2u * oc4 * o->kh * o->kw;
      break;
    case FB_OP_MEAN:
      if (ti->rank != 3 || to->size != ti->c) return fail(err, errlen, "mean maps (H, W, C) to C values", i, ti->c, to->size);
      need = 8;
      break;
    case FB_OP_ADD: {
      const fb_tensor_t *tb = &T[o->in1];
      if (tb->size != ti->size || to->size != ti->size) return fail(err, errlen, "add needs equal sizes", i, ti->size, tb->size);
      if ((overlaps(to, ti) && to->offset != ti->offset) || (overlaps(to, tb) && to->offset != tb->offset))
        return fail(err, errlen, "add output partly overlaps an input", i, to->offset, ti->offset);
      need = 28;
      break;
    }
    case FB_OP_RESHAPE:
      if (to->size != ti->size) return fail(err, errlen, "reshape changes the size", i, ti->size, to->size);
      if (overlaps(to, ti) && to->offset != ti->offset) return fail(err, errlen, "reshape output partly overlaps its input", i, to->offset, ti->offset);
      break;
    case FB_OP_MAXPOOL:
    case FB_OP_AVGPOOL:
      break;
    case FB_OP_PWCONV_CSR:
    case FB_OP_PWCONV_MONARCH: {
      uint32_t a = 0, b = 0;
      if (ti->rank < 2 || to->rank != ti->rank || to->h != ti->h || to->w != ti->w || o->kh != 1 || o->kw != 1)
        return fail(err, errlen, "pointwise op needs (H, W, C) or (W, C) tensors of the same pixels", i, ti->rank, to->rank);
      const char *why = fb_pw_check(o->kind, blob + o->offset, o->size, o->k4, ti->c, to->c, o->flags, to->zp, o->act_min, &a, &b);
      if (why) return fail(err, errlen, why, i, a, b);
      need = o->size;
      break;
    }
    default:
      return fail(err, errlen, "unsupported op kind", i, o->kind, 0);
  }
  if (o->size != need) return fail(err, errlen, "parameter size mismatch", i, o->size, need);
  if (o->kind != FB_OP_ADD && o->kind != FB_OP_RESHAPE && overlaps(to, ti))
    return fail(err, errlen, "output overlaps the input in the arena", i, to->offset, ti->offset);
  uint32_t sc = scratch_need(o, ti, to);
  if (sc > G->scratch_size) return fail(err, errlen, "scratch larger than the header's scratch_size", i, sc, G->scratch_size);
  if (o->kind == FB_OP_CONV2D || o->kind == FB_OP_DENSE || o->kind == FB_OP_DWCONV2D) {
    const int32_t *bias = (const int32_t *)(const void *)(blob + o->offset);
    const int32_t *rq = bias + oc4;
    int fast = (o->flags & FB_OPF_FAST) != 0;
    for (uint32_t r = 0; r < oc4; r++) {
      if (rq[2 * r] < 0) return fail(err, errlen, "negative requant multiplier", i, r, (uint32_t)rq[2 * r]);
      if (!fast && (rq[2 * r + 1] < -31 || rq[2 * r + 1] > 30))
        return fail(err, errlen, "requant shift outside [-31, 30]", i, r, (uint32_t)rq[2 * r + 1]);
    }
    const int16_t *w16 = (const int16_t *)(const void *)(rq + 2u * oc4);
    int dw = o->kind == FB_OP_DWCONV2D;
    if (fast && (o->flags & FB_OPF_SINGLE))
      return fail(err, errlen, "fast and single-rounding flags together", i, o->flags, 0);
    if (fast && !fast_ok(bias, rq, w16, to->c, o->k4, dw ? (uint32_t)o->kh * o->kw : o->k4, dw))
      return fail(err, errlen, "fast-requant flag on an op whose accumulator can reach 2^30", i, 0, 0);
  } else if (o->kind == FB_OP_MEAN || o->kind == FB_OP_ADD) {
    const int32_t *p = (const int32_t *)(const void *)(blob + o->offset);
    if (o->kind == FB_OP_ADD && (p[0] < 0 || p[0] > 22)) return fail(err, errlen, "add left_shift outside [0, 22]", i, (uint32_t)p[0], 22);
    int32_t lowest = o->kind == FB_OP_MEAN ? -63 : -31; /* MEAN folds 1/(H*W) into its shift */
    for (uint32_t k = o->kind == FB_OP_ADD ? 1u : 0u; k < o->size / 4u; k += 2u)
      if (p[k] < 0 || p[k + 1] < lowest || p[k + 1] > 30) return fail(err, errlen, "requant multiplier or shift out of range", i, k, (uint32_t)p[k + 1]);
  }
  return 0;
}

int fb_graph_load(const uint8_t *blob, uint32_t len, fb_model_t *m, char *err, int errlen) {
  const fb_header_t *h = (const fb_header_t *)(const void *)blob;
  if (len < FB_GRAPH_HEADER_SIZE) return fail(err, errlen, "blob shorter than its header", -1, len, FB_GRAPH_HEADER_SIZE);
  if (h->header_size != FB_GRAPH_HEADER_SIZE) return fail(err, errlen, "bad header size", -1, h->header_size, FB_GRAPH_HEADER_SIZE);
  const fb_graph_t *G = (const fb_graph_t *)(const void *)(blob + FB_HEADER_SIZE);
  if (h->total_size > len || h->total_size < FB_GRAPH_HEADER_SIZE) return fail(err, errlen, "bad total size", -1, h->total_size, len);
  uint32_t crc = fb_crc32_update(0, blob + 16, h->total_size - 16u);
  if (crc != h->crc32) return fail(err, errlen, "blob CRC mismatch (got, expected)", -1, crc, h->crc32);
  uint32_t tables = FB_GRAPH_HEADER_SIZE + 24u * G->n_tensors + 40u * h->n_layers;
  if (G->n_tensors == 0 || h->n_layers == 0) return fail(err, errlen, "no tensors or no ops", -1, G->n_tensors, h->n_layers);
  if (G->n_tensors > FB_GRAPH_MAX_TENSORS) return fail(err, errlen, "more tensors than this firmware allows", -1, G->n_tensors, FB_GRAPH_MAX_TENSORS);
  if (tables > h->total_size) return fail(err, errlen, "tables outside the blob", -1, tables, h->total_size);
  if (G->arena_size > FB_ARENA_MAX)
    return fail(err, errlen, "model needs a larger arena than this board has (needed, available)", -1, G->arena_size, FB_ARENA_MAX);
  if (G->scratch_size > FB_SCRATCH_MAX)
    return fail(err, errlen, "model needs more scratch than this board has (needed, available)", -1, G->scratch_size, FB_SCRATCH_MAX);
  for (int k = 0; k < 16; k++) /* printed by m-model-info */
    if (h->model_id[k] && (h->model_id[k] < 32 || h->model_id[k] > 126))
      return fail(err, errlen, "model id holds a non-printable byte (position, byte)", -1, (uint32_t)k, (uint8_t)h->model_id[k]);
  const fb_tensor_t *T = tensors(blob);
  for (uint32_t t = 0; t < G->n_tensors; t++) {
    const fb_tensor_t *x = &T[t];
    if (x->rank < 1 || x->rank > 3 || (x->rank < 3 && x->h != 1) || (x->rank == 1 && x->w != 1))
      return fail(err, errlen, "tensor rank must be 1, 2 or 3 (h = 1 below rank 3)", -1, t, x->rank);
    if (x->size != (uint32_t)x->h * x->w * x->c || x->size == 0) return fail(err, errlen, "tensor size is not h*w*c", -1, t, x->size);
    if ((x->offset & 3u) || x->offset > G->arena_size || x->size > G->arena_size - x->offset)
      return fail(err, errlen, "tensor outside the arena (tensor, offset)", -1, t, x->offset);
    if (x->zp < -128 || x->zp > 127) return fail(err, errlen, "tensor zero point outside int8", -1, t, (uint32_t)x->zp);
  }
  if (G->input >= G->n_tensors || G->output >= G->n_tensors) return fail(err, errlen, "graph input/output id out of range", -1, G->input, G->output);
  if (h->in_dim != T[G->input].size || h->out_dim != T[G->output].size)
    return fail(err, errlen, "header in/out widths differ from the tensors", -1, h->in_dim, h->out_dim);
  if (h->out_dim > FB_OUT_MAX) return fail(err, errlen, "output wider than this board allows", -1, h->out_dim, FB_OUT_MAX);
  static uint8_t made[FB_GRAPH_MAX_TENSORS];
  for (uint32_t t = 0; t < G->n_tensors; t++) made[t] = 0;
  made[G->input] = 1;
  const fb_op_t *ops = (const fb_op_t *)(const void *)(blob + FB_GRAPH_HEADER_SIZE + 24u * G->n_tensors);
  for (int i = 0; i < h->n_layers; i++) {
    if (check_op(blob, h, G, i, &ops[i], made, err, errlen)) return -1;
    made[ops[i].out] = 1;
  }
  if (!made[G->output]) return fail(err, errlen, "no op makes the graph output", -1, G->output, 0);
  m->base = blob;
  m->h = h;
  m->layers = 0;
  m->head = 0;
  m->graph = G;
  m->tensors = T;
  m->ops = ops;
  return 0;
}

static void copy_bytes(int8_t *dst, const int8_t *src, uint32_t n) {
  if (dst == src) return;
  if ((((uintptr_t)dst | (uintptr_t)src | n) & 3u) == 0) {
    fb_copy_words(dst, src, (int32_t)n);
  } else {
    for (uint32_t i = 0; i < n; i++) dst[i] = src[i];
  }
}

static void run_op(const fb_model_t *m, const fb_op_t *o) {
  const fb_tensor_t *ti = &m->tensors[o->in0], *to = &m->tensors[o->out];
  const int8_t *x = fb_arena + ti->offset;
  int8_t *y = fb_arena + to->offset;
  const int32_t *p = (const int32_t *)(const void *)(m->base + o->offset);
  fb_geom_t g;
  geom(o, ti, to, &g);
  uint32_t oc4 = ceil4(to->c);
  int32_t mode = (o->flags & FB_OPF_SINGLE) ? FB_RQ_SINGLE : (o->flags & FB_OPF_FAST) ? FB_RQ_FAST : FB_RQ_EXACT;
  fb_crq_t q = {p, p + oc4, to->zp, o->act_min, o->act_max, mode};
  const int16_t *w16 = (const int16_t *)(const void *)(p + 3u * oc4);
  switch (o->kind) {
    case FB_OP_CONV2D:
      fb_conv2d_s8(x, &g, w16, (int32_t)o->k4, &q, fb_scratch, y);
      break;
    case FB_OP_DENSE:
      g.h = g.w = g.oh = g.ow = 1;
      g.c = (int32_t)ti->size;
      g.kh = g.kw = g.sh = g.sw = 1;
      g.pt = g.pl = 0;
      fb_conv2d_s8(x, &g, w16, (int32_t)o->k4, &q, fb_scratch, y);
      break;
    case FB_OP_DWCONV2D:
      fb_dwconv2d_s8(x, &g, w16, &q, fb_scratch, y);
      break;
    case FB_OP_MAXPOOL:
      fb_maxpool_s8(x, &g, o->act_min, o->act_max, y);
      break;
    case FB_OP_AVGPOOL:
      fb_avgpool_s8(x, &g, o->act_min, o->act_max, y);
      break;
    case FB_OP_MEAN:
      fb_mean_s8(x, (int32_t)ti->h * ti->w, ti->c, ti->zp, p[0], p[1], to->zp, o->act_min, o->act_max, y);
      break;
    case FB_OP_ADD: {
      const fb_tensor_t *tb = &m->tensors[o->in1];
      fb_add_s8(x, fb_arena + tb->offset, (int32_t)ti->size, p, ti->zp, tb->zp, to->zp, o->act_min, o->act_max, y);
      break;
    }
    case FB_OP_PWCONV_CSR:
      fb_pwconv_csr_s8(x, (int32_t)ti->h * ti->w, ti->c, to->c, p, &q, (int16_t *)(void *)fb_scratch, y);
      break;
    case FB_OP_PWCONV_MONARCH:
      fb_pwconv_monarch_s8(x, (int32_t)ti->h * ti->w, ti->c, to->c, p, o->k4, to->zp, o->act_min, o->act_max,
                           (int16_t *)(void *)fb_scratch, y);
      break;
    default: /* reshape: the same bytes (the planner normally aliases them in place) */
      copy_bytes(y, x, ti->size);
      break;
  }
}

void fb_graph_run(const fb_model_t *m, const int8_t *in, int8_t *out) {
  const fb_graph_t *G = m->graph;
  copy_bytes(fb_arena + m->tensors[G->input].offset, in, m->h->in_dim);
  for (int i = 0; i < m->h->n_layers; i++) run_op(m, &m->ops[i]);
  copy_bytes(out, fb_arena + m->tensors[G->output].offset, m->h->out_dim);
}
