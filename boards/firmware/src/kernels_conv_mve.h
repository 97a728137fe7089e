/* Helium (M-profile Vector Extension, Cortex-M55) paths of the operator-graph convolutions: the same
 * integers as kernels_conv.c's portable C (TFLite double-rounding requantisation, zero points,
 * clamps), selected at compile time by __ARM_FEATURE_MVE; kernels_conv.c calls them first. */
#ifndef FB_KERNELS_CONV_MVE_H
#define FB_KERNELS_CONV_MVE_H
#include "kernels_conv.h"

#if defined(__ARM_FEATURE_MVE) && !defined(FB_PORTABLE)
#define FB_CONV_MVE 1
/* Convolution or dense (a 1x1 convolution on a 1x1 input) over the blob's int16 weights; scratch holds
 * k4 bytes (the int8 patch). Returns 0, having done nothing, for single-rounding requantisation
 * (FB_RQ_SINGLE), which stays on the scalar path. */
int fb_mve_conv2d_s8(const int8_t *x, const fb_geom_t *g, const int16_t *w16, int32_t k4, const fb_crq_t *q,
                     int8_t *scratch, int8_t *y);
/* One output pixel of a depthwise convolution (any kh x kw) from the zero-point padded band: base points
 * at the window's top-left pixel, c4 bytes per padded pixel, rs bytes per padded row; wn: the layer's
 * fb_mve_dw_natural weights or 0. Not for FB_RQ_SINGLE. */
void fb_mve_dw_pixel(const int8_t *base, const int16_t *w16, const int16_t *wn, const fb_geom_t *g, int32_t c4,
                     int32_t rs, const fb_crq_t *q, int8_t *y);
/* fb_mve_dw_pixel for the g->ow output pixels of one row: band points at the row's first window, pixels
 * g->sw * c4 bytes apart. */
void fb_mve_dw_row(const int8_t *band, const int16_t *w16, const int16_t *wn, const fb_geom_t *g, int32_t c4,
                   int32_t rs, const fb_crq_t *q, int8_t *y);
#define FB_MVE_DW_WN (96 * 9) /* int16 entries of a layer's natural-order 3x3 weights (c4 <= 96) */
/* A 3x3 depthwise layer's weights in natural channel order ([8-channel group][tap][8]) into wn, returned;
 * 0 where the layer has no such path (another kernel, a pixel stride c4 without one): then fb_mve_dw_pixel
 * takes wn = 0. */
const int16_t *fb_mve_dw_natural(const int16_t *w16, const fb_geom_t *g, int32_t c4, int16_t *wn);
/* Average pooling, the same integers as fb_avgpool_s8: 16 channels per pass of the window. */
void fb_mve_avgpool_s8(const int8_t *x, const fb_geom_t *g, int32_t lo, int32_t hi, int8_t *y);
#else
#define FB_CONV_MVE 0
#endif
#endif
