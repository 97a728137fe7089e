/* Model runtime: validates a blob in RAM and runs it layer by layer on int8 activations. */
#ifndef FB_RUNTIME_H
#define FB_RUNTIME_H
#include <stdint.h>
#include "blob.h"

typedef struct {
  const uint8_t *base;
  const fb_header_t *h;
  const fb_layer_t *layers;
  int head; /* 0 none, FB_SOFTMAX or FB_ARGMAX */
  /* version 2 (operator graph); graph == 0 for a version 1 blob */
  const fb_graph_t *graph;
  const fb_tensor_t *tensors;
  const fb_op_t *ops;
} fb_model_t;

/* Validate and adopt a blob; returns 0 or writes a one-line reason into err (len bytes). */
int fb_model_load(const uint8_t *blob, uint32_t len, fb_model_t *m, char *err, int errlen);
/* Run one inference: in has h->in_dim int8 values, out receives h->out_dim values. */
void fb_model_run(const fb_model_t *m, const int8_t *in, int8_t *out);
/* Names of the layer kinds this build runs, comma-separated. */
extern const char fb_kinds[];
#endif
