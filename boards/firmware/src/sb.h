/* A tiny string builder (no printf in this firmware). */
#ifndef FB_SB_H
#define FB_SB_H
#include <stdint.h>
typedef struct {
  char *buf;
  int len, cap;
} fb_sb_t;
void sb_init(fb_sb_t *s, char *buf, int cap);
void sb_str(fb_sb_t *s, const char *t);
void sb_u64(fb_sb_t *s, uint64_t v);
void sb_i32(fb_sb_t *s, int32_t v);
void sb_hex8(fb_sb_t *s, uint8_t v);
void sb_hex32(fb_sb_t *s, uint32_t v);
void sb_f3(fb_sb_t *s, float v); /* fixed point, 3 decimals */
/* A blob loader's one-line reason into err: "<unit> <at>: <what> (a, b)" (no prefix if at < 0); returns -1. */
int sb_error(char *err, int errlen, const char *unit, int at, const char *what, uint32_t a, uint32_t b);
#endif
