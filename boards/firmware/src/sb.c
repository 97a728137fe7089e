#include "sb.h"

void sb_init(fb_sb_t *s, char *buf, int cap) {
  s->buf = buf;
  s->len = 0;
  s->cap = cap;
  if (cap) buf[0] = 0;
}

static void sb_c(fb_sb_t *s, char c) {
  if (s->len + 1 < s->cap) {
    s->buf[s->len++] = c;
    s->buf[s->len] = 0;
  }
}

void sb_str(fb_sb_t *s, const char *t) {
  while (*t) sb_c(s, *t++);
}

void sb_u64(fb_sb_t *s, uint64_t v) {
  char b[24];
  int i = 0;
  do {
    b[i++] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v);
  while (i) sb_c(s, b[--i]);
}

void sb_i32(fb_sb_t *s, int32_t v) {
  if (v < 0) {
    sb_c(s, '-');
    sb_u64(s, (uint64_t)(-(int64_t)v));
  } else {
    sb_u64(s, (uint64_t)v);
  }
}

static const char hexd[] = "0123456789abcdef";

void sb_hex8(fb_sb_t *s, uint8_t v) {
  sb_c(s, hexd[v >> 4]);
  sb_c(s, hexd[v & 15u]);
}

void sb_hex32(fb_sb_t *s, uint32_t v) {
  for (int i = 28; i >= 0; i -= 4) sb_c(s, hexd[(v >> i) & 15u]);
}

void sb_f3(fb_sb_t *s, float v) {
  if (v != v) {
    sb_str(s, "nan");
    return;
  }
  if (v < 0) {
    sb_c(s, '-');
    v = -v;
  }
  if (v > 4.0e6f) v = 4.0e6f;
  uint32_t m = (uint32_t)(v * 1000.0f + 0.5f);
  sb_u64(s, m / 1000u);
  sb_c(s, '.');
  uint32_t f = m % 1000u;
  sb_c(s, (char)('0' + f / 100u));
  sb_c(s, (char)('0' + (f / 10u) % 10u));
  sb_c(s, (char)('0' + f % 10u));
}

int sb_error(char *err, int errlen, const char *unit, int at, const char *what, uint32_t a, uint32_t b) {
  fb_sb_t s;
  sb_init(&s, err, errlen);
  if (at >= 0) {
    sb_str(&s, unit);
    sb_str(&s, " ");
    sb_u64(&s, (uint64_t)at);
    sb_str(&s, ": ");
  }
  sb_str(&s, what);
  sb_str(&s, " (");
  sb_u64(&s, a);
  sb_str(&s, ", ");
  sb_u64(&s, b);
  sb_str(&s, ")");
  return -1;
}
