/* Pointwise (1x1) convolutions of pruned and factored CNNs (blob version 2 ops PWCONV_CSR and
 * PWCONV_MONARCH; layouts in blob.h, arithmetic in harness/mcu/blob/graph.py). The DSP build
 * (SMLATB/SMLATT on a channel-major int16 tile; the MLP blob's Monarch kernel) and the portable
 * build compute the same integers. */
#ifndef FB_KERNELS_PW_H
#define FB_KERNELS_PW_H
#include <stdint.h>

#include "kernels_conv.h"

#define FB_PW_TILE 4 /* pixels per tile of the sparse kernel (PW_TILE in graph_codec.py) */

/* Checks the parameters of a pointwise op (kind FB_OP_PWCONV_CSR or FB_OP_PWCONV_MONARCH) whose
 * input has cin channels and output cout; aux is the op's k4 field (nnz, or k | q << 16). Returns
 * 0, or a message naming the problem (with *a, *b the values to print). */
const char *fb_pw_check(uint8_t kind, const uint8_t *p, uint32_t size, uint32_t aux, uint32_t cin, uint32_t cout,
                        uint16_t flags, int32_t zp_out, int32_t act_min, uint32_t *a, uint32_t *b);
/* Scratch bytes of a pointwise op. */
uint32_t fb_pw_scratch(uint8_t kind, uint32_t aux, uint32_t cin);
/* y[p][r] = rq(bias[r] + sum over the nonzeros of row r of w * x[p][col]) for npix pixels. */
void fb_pwconv_csr_s8(const int8_t *x, int32_t npix, int32_t cin, int32_t cout, const int32_t *params, const fb_crq_t *q,
                      int16_t *scratch, int8_t *y);
/* The MLP blob's Monarch layer (fb_monarch_s8) at each of npix pixels. */
void fb_pwconv_monarch_s8(const int8_t *x, int32_t npix, int32_t cin, int32_t cout, const int32_t *params, uint32_t aux,
                          int32_t zp_out, int32_t lo, int32_t hi, int16_t *scratch, int8_t *y);
#endif
