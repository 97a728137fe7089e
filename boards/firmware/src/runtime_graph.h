/* Blob version 2 (int8 operator graph): loader and runner, called by runtime.c by version. */
#ifndef FB_RUNTIME_GRAPH_H
#define FB_RUNTIME_GRAPH_H
#include <stdint.h>
#include "runtime.h"

#ifndef FB_GRAPH_MAX_TENSORS
#define FB_GRAPH_MAX_TENSORS 256u
#endif
/* Validate a version 2 blob (header magic and version already checked); 0 or a one-line reason. */
int fb_graph_load(const uint8_t *blob, uint32_t len, fb_model_t *m, char *err, int errlen);
void fb_graph_run(const fb_model_t *m, const int8_t *in, int8_t *out);
#endif
