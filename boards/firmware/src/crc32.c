#include "crc32.h"

static uint32_t table[256];

void fb_crc32_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
}

uint32_t fb_crc32_byte(uint32_t state, uint8_t b) { return table[(state ^ b) & 0xFFu] ^ (state >> 8); }

uint32_t fb_crc32_update(uint32_t crc, const uint8_t *p, uint32_t n) {
  uint32_t s = ~crc;
  while (n--) s = fb_crc32_byte(s, *p++);
  return ~s;
}
