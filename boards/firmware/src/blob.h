/* frugalbench MCU model blob, version 1 (little-endian, every section 4-byte aligned).
 * The Python writer and the NumPy reference interpreter live in harness/mcu/blob.py and
 * harness/mcu/reference.py; keep the three in step.
 *
 * Header (64 bytes):
 *   0 magic "FBM1" | 4 u16 version | 6 u16 header_size | 8 u32 total_size | 12 u32 crc32 of [16, total)
 *  16 u16 n_layers | 18 u16 flags | 20 u32 in_dim | 24 u32 out_dim | 28 u32 max_dim
 *  32 f32 in_scale | 36 i32 in_zp | 40 f32 out_scale | 44 i32 out_zp | 48 char model_id[16]
 * Layer table at 64: n_layers entries of 32 bytes (fb_layer_t); flags bit 0 = FB_FLAG_UNIFORM_RQ.
 * Parameters (offsets from the blob start):
 *   DENSE:    i32 bias[out] | i32 mult[out] | i32 shift[out] | i8 w[out*in] in 4x4-block order
 *   CSR:      bias | mult | shift | u32 rowptr[out+1] | u16 col[nnz] (pad 4) | i8 val[nnz] (pad 4)
 *   BSR4:     bias | mult | shift | u32 bptr[out/4+1] | u16 bcol[nb] (pad 4) | i8 w[nb*16]
 *   MONARCH:  two block-diagonal int8 factors with an intermediate requantisation (see runtime.c)
 *   BUTTERFLY: log2(n) factors of 2x2 butterflies, each requantised (see runtime.c)
 *   SOFTMAX, ARGMAX: output heads without parameters (they only change m-results).
 * bias already holds -zp_in * sum(w row) (the input zero point is folded in at export).
 * Requantisation (TFLite single rounding): ts = 31 - shift, r = (acc*mult + 2^(ts-1)) >> ts,
 * y = clamp(r + zp_out, relu ? max(-128, zp_out) : -128, 127). */
#ifndef FB_BLOB_H
#define FB_BLOB_H
#include <stdint.h>

#define FB_MAGIC 0x314D4246u /* "FBM1" */
#define FB_VERSION 1u
#define FB_HEADER_SIZE 64u

#define FB_FLAG_UNIFORM_RQ 1u /* layer flag: one mult/shift for all channels (checked at load) */

enum { FB_DENSE = 1, FB_CSR = 2, FB_BSR4 = 3, FB_MONARCH = 4, FB_BUTTERFLY = 5, FB_SOFTMAX = 6, FB_ARGMAX = 7 };

typedef struct {
  uint32_t magic;
  uint16_t version, header_size;
  uint32_t total_size, crc32;
  uint16_t n_layers, flags;
  uint32_t in_dim, out_dim, max_dim;
  float in_scale;
  int32_t in_zp;
  float out_scale;
  int32_t out_zp;
  char model_id[16];
} fb_header_t;

typedef struct {
  uint8_t kind, act;
  uint16_t flags;
  uint32_t in_dim, out_dim, offset, size;
  int32_t zp_in, zp_out;
  uint32_t aux;
} fb_layer_t;

_Static_assert(sizeof(fb_header_t) == 64, "header layout");
_Static_assert(sizeof(fb_layer_t) == 32, "layer layout");
#endif
