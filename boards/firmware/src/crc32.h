/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32 and binascii.crc32 compute it). */
#ifndef FB_CRC32_H
#define FB_CRC32_H
#include <stdint.h>
void fb_crc32_init(void);
uint32_t fb_crc32_update(uint32_t crc, const uint8_t *p, uint32_t n); /* start with crc = 0 */
uint32_t fb_crc32_byte(uint32_t state, uint8_t b); /* raw state: start 0xFFFFFFFF, finish ~state */
#endif
