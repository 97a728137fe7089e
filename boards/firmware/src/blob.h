/* frugalbench MCU model blob, versions 1 (MLP layers) and 2 (int8 operator graph, CNNs);
 * little-endian, every section 4-byte aligned.
 *
 * ---------------------------------------------------------------- version 1
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
 * y = clamp(r + zp_out, relu ? max(-128, zp_out) : -128, 127).
 *
 * ---------------------------------------------------------------- version 2
 * Writer/reader: harness/mcu/blob/graph_codec.py; arithmetic: harness/mcu/blob/graph.py (QGraph);
 * kernels: kernels_conv.c; memory plan: harness/mcu/plan.py.
 * Header: the 64 bytes of version 1 with version = 2, n_layers = number of ops, in_dim/out_dim = bytes
 *   of the graph input/output tensor, max_dim = largest tensor, in/out scale and zp of those tensors;
 *   the CRC covers [16, total) as in version 1. Then at 64 (fb_graph_t, 32 bytes):
 *  64 u32 arena_size | 68 u32 scratch_size | 72 u16 n_tensors | 74 u16 input | 76 u16 output
 *  78 u16 0 | 80 u32 params_offset | 84..95 0
 * Tensor table at 96: n_tensors entries of 24 bytes (fb_tensor_t): u16 h, w, c (a vector of n is 1,1,n,
 *   a (w, c) matrix 1,w,c), u8 rank (1, 2 or 3), u8 0, u32 arena offset (multiple of 4), u32 size = h*w*c, f32 scale, i32 zp.
 * Op table after it: n_layers entries of 40 bytes (fb_op_t): u8 kind, u8 n_in, u16 flags, u16 in0, in1,
 *   out, 0, i16 act_min, act_max, u8 kh, kw, stride_h, stride_w, pad_top, pad_left, u16 0,
 *   u32 param offset (from the blob start, multiple of 4), u32 param size, u32 k4, u32 0.
 *   flags bit 0 FB_OPF_FAST: every channel has shift <= -1 and |acc| < 2^30 for any int8 input (the
 *   loader checks it), so the requantisation may double the accumulator before SMMULR; the shift
 *   entries of such an op hold e - 1 = -shift - 1 (0..30) instead of shift.
 *   flags bit 1 FB_OPF_SINGLE: single-rounding requantisation (LiteRT FULLY_CONNECTED, QOp attr
 *   rounding = 1): (acc*mult + 2^(30-shift)) >> (31-shift).
 * Parameters (Cout4 = Cout rounded up to 4, k4 = KH*KW*Cin (dense: in) rounded up to 4; padding
 * rows/columns are zero):
 *   CONV2D, DENSE: i32 bias[Cout4] | i32 (mult, shift)[Cout4] | i16 w[Cout4/4][k4/4][2][4][2]:
 *     per block of 4 output rows and group of 4 patch columns c..c+3, 8 halfword pairs: for rows
 *     r0..r3 (w[r][c], w[r][c+2]), then for rows r0..r3 (w[r][c+1], w[r][c+3]) (SMLAD against the
 *     widened input [x0, x2], [x1, x3]). Patch order (kh, kw, cin) = the (Cout, KH, KW, Cin) weights.
 *   DWCONV2D: i32 bias[C4] | (mult, shift)[C4] | i16 w[C4/4][KH*KW][4]: per group of 4 channels and
 *     tap, (w[c], w[c+2], w[c+1], w[c+3]) (SMLABB/SMLATT against SXTB16 of 4 input channels).
 *   bias holds bias - zp_in * sum(w) of its channel (exact in int32 wrap-around arithmetic: the kernels
 *     read padding taps as zp_in, where TFLite skips them, so padding adds w * 0).
 *   MEAN: i32 mult, shift (1/(H*W) folded in as LiteRT does: shift down to -63). ADD: i32 left_shift, mult_a, shift_a, mult_b, shift_b, mult_out, shift_out.
 *   MAXPOOL, AVGPOOL, RESHAPE: none.
 *   PWCONV_CSR (a 1x1 conv2d stored sparse; kernels_pw.c): i32 bias[Cout4] | (mult, shift)[Cout4] as
 *     CONV2D (flags FAST and SINGLE too) | u32 rowptr[Cout+1] | u32 entry[nnz] = column | int16 w << 16;
 *     the op's k4 field holds nnz. Input (H, W, Cin) or (W, Cin), output the same pixels with Cout.
 *   PWCONV_MONARCH (Monarch-factored 1x1 conv): i32 bias[Cout] | mult[Cout] | shift[Cout] | then the
 *     version 1 MONARCH parameters after its bias/mult/shift (bias1[k*q] with -zp_in*sum(w1) folded,
 *     sh1, w1 and w2 in 4x4-block order); k4 = k | q << 16; single-rounding requantisation; act_min
 *     -128 or max(-128, zp_out).
 * Scratch bytes an op needs (the header's scratch_size is at least the largest):
 *   CONV2D, DENSE: 3 * k4 (int8 patch + int16 widened patch); DWCONV2D: ((min(OH, 4)-1)*stride_h + KH)
 *   * Wp * C4 with Wp = (OW-1)*stride_w + KW (the zero-point padded input rows read by a band of up
 *   to 4 output rows); PWCONV_CSR: 8 * ceil4(Cin) (int16 tile of 4 pixels); PWCONV_MONARCH:
 *   2*Cin + 2*k*q + 16 (the widened input and the int16 intermediate of one pixel); others 0.
 * Requantisation: TFLite's double rounding MultiplyByQuantizedMultiplier (fb_mbqm in kernels_conv.h). */
#ifndef FB_BLOB_H
#define FB_BLOB_H
#include <stdint.h>

#define FB_MAGIC 0x314D4246u /* "FBM1" */
#define FB_VERSION 1u
#define FB_HEADER_SIZE 64u

#define FB_FLAG_UNIFORM_RQ 1u /* layer flag: one mult/shift for all channels (checked at load) */

#define FB_VERSION2 2u
#define FB_GRAPH_HEADER_SIZE 96u
#define FB_OPF_FAST 1u
#define FB_OPF_SINGLE 2u

enum { FB_OP_CONV2D = 1, FB_OP_DWCONV2D = 2, FB_OP_DENSE = 3, FB_OP_MAXPOOL = 4, FB_OP_AVGPOOL = 5, FB_OP_MEAN = 6,
       FB_OP_ADD = 7, FB_OP_RESHAPE = 8, FB_OP_PWCONV_CSR = 9, FB_OP_PWCONV_MONARCH = 10 };

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

typedef struct {
  uint32_t arena_size, scratch_size;
  uint16_t n_tensors, input, output, reserved0;
  uint32_t params_offset, reserved[3];
} fb_graph_t;

typedef struct {
  uint16_t h, w, c;
  uint8_t rank, reserved;
  uint32_t offset, size;
  float scale;
  int32_t zp;
} fb_tensor_t;

typedef struct {
  uint8_t kind, n_in;
  uint16_t flags;
  uint16_t in0, in1, out, reserved0;
  int16_t act_min, act_max;
  uint8_t kh, kw, stride_h, stride_w, pad_top, pad_left;
  uint16_t reserved1;
  uint32_t offset, size, k4, reserved2;
} fb_op_t;

_Static_assert(sizeof(fb_graph_t) == 32, "graph header layout");
_Static_assert(sizeof(fb_tensor_t) == 24, "tensor layout");
_Static_assert(sizeof(fb_op_t) == 40, "op layout");
_Static_assert(sizeof(fb_header_t) == 64, "header layout");
_Static_assert(sizeof(fb_layer_t) == 32, "layer layout");
#endif
