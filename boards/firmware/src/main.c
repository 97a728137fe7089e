/* EEMBC / MLPerf Tiny DUT protocol (performance mode), verbatim, plus negotiated extensions.
 *
 * Standard: name% profile% help% timestamp% db load N% db <hex>% db print% infer N W% results%
 * Extensions (a host asks with ext%; old DUTs answer e-[Unknown command: ext]):
 *   ext%                        capability lines m-ext-...
 *   bulk <db|model> LEN CRC%    m-bulk-go, then LEN raw bytes, then m-bulk-done-LEN (+ model info) or e-[...]
 *   model%                      m-model-info-[...] of the loaded blob
 *   xres%                       m-xres-<hex>: int8 outputs of the last inference
 *   xstat%                      m-xstat-ticks-T-hz-H-n-N: SysTick ticks of the last timed section
 *   xbatch K%                   K inferences on K inputs packed in the db buffer, one m-xout-<hex> each
 *   xcrc 1% / xcrc 0%           reply checksums on/off (m-xcrc-on / m-xcrc-off); off at boot
 * Every reply ends with m-ready; errors start with e-. With reply checksums on, the line before
 * m-ready is m-crc-XXXXXXXX: the CRC-32 of the command text (as dispatched, without '%') followed by
 * every reply byte before that line, so a flipped, dropped or stale reply is caught by the host.
 * Nothing changes on the wire until a host sends xcrc 1: plain EEMBC hosts see the verbatim bytes. */
#include <stdint.h>

#include "board.h"
#include "crc32.h"
#include "runtime.h"
#include "sb.h"

#define CMD_MAX 128
#define FW_VERSION "ULPMark for tinyML Firmware V0.0.1"
#define VENDOR "frugalbench"

static uint32_t db_words[FB_DB_MAX / 4u];
static uint8_t *const db = (uint8_t *)db_words;
static uint32_t db_expect, db_pos;

#if defined(FB_MODEL_ADDR)
/* A fixed RAM window outside every ELF segment (QEMU -device loader may preload a blob there). */
#define model_area ((uint8_t *)FB_MODEL_ADDR)
#else
static uint8_t model_area[FB_MODEL_MAX] __attribute__((section(".noinit"), aligned(8))); /* never zeroed */
#endif
static fb_model_t model;
#ifndef FB_OUT_MAX
#define FB_OUT_MAX FB_ACT_MAX
#endif
static int8_t last_out[FB_OUT_MAX] __attribute__((aligned(4))); /* v2 graphs may return a whole feature map */
static int have_out;
static uint64_t last_ticks;
static uint32_t last_n;

static char line[CMD_MAX + 1];
static char msg[160];
static int crc_on;          /* reply checksums negotiated (xcrc 1) */
static uint32_t crc_state;  /* raw CRC-32 state of the current command + reply */
static int crc_stop;        /* xcrc 0: its own reply is still signed, the next ones are not */

/* Every reply byte goes through here so the reply checksum covers it. */
static void emit(char c) {
  crc_state = fb_crc32_byte(crc_state, (uint8_t)c);
  board_putc(c);
}
static void out_str(const char *s) {
  while (*s) emit(*s++);
}
static void out_line(const char *s) {
  out_str(s);
  out_str("\r\n");
}

static int starts(const char *s, const char *p) {
  while (*p)
    if (*s++ != *p++) return 0;
  return 1;
}
/* Parse a decimal; returns pointer after it or 0 if none. */
static const char *parse_u32(const char *s, uint32_t *v) {
  while (*s == ' ') s++;
  if (*s < '0' || *s > '9') return 0;
  uint64_t r = 0;
  while (*s >= '0' && *s <= '9') {
    r = r * 10u + (uint32_t)(*s++ - '0');
    if (r > 0xFFFFFFFFu) return 0;
  }
  *v = (uint32_t)r;
  return s;
}
static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void err_line(const char *a, uint64_t n, const char *b) {
  fb_sb_t s;
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "e-[");
  sb_str(&s, a);
  if (b) {
    sb_u64(&s, n);
    sb_str(&s, b);
  }
  sb_str(&s, "]");
  out_line(msg);
}

static void lap_us(uint64_t ticks) {
  fb_sb_t s;
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "m-lap-us-");
  sb_u64(&s, (ticks * 1000000ull) / board_tick_hz());
  out_line(msg);
}

static int need_model(void) {
  if (model.h) return 1;
  out_line("e-[No model loaded: upload one with the bulk model extension]");
  return 0;
}

/* ---- th_* equivalents ---- */
static void th_infer(const int8_t *in) { fb_model_run(&model, in, last_out); }

static float fb_expf(float x) {
  if (x < -87.0f) return 0.0f;
  if (x > 88.0f) x = 88.0f;
  int k = (int)(x * 1.44269504f + (x >= 0 ? 0.5f : -0.5f));
  float r = x - (float)k * 0.693147181f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666667f + r * (0.0416666667f + r * 0.00833333333f))));
  union {
    float f;
    uint32_t u;
  } u;
  if (k + 127 <= 0) return 0.0f;
  u.u = (uint32_t)(k + 127) << 23;
  return p * u.f;
}

static void th_results(void) {
  const fb_header_t *h = model.h;
  fb_sb_t s;
  char num[40]; /* one value at a time: a 256-output line does not fit a small board's RAM at once */
  uint32_t n = h->out_dim;
  float mx = -1e30f, sum = 0.0f;
  int arg = 0;
  for (uint32_t i = 0; i < n; i++) {
    float v = h->out_scale * (float)(last_out[i] - h->out_zp);
    if (v > mx) {
      mx = v;
      arg = (int)i;
    }
  }
  if (model.head == FB_SOFTMAX)
    for (uint32_t i = 0; i < n; i++) sum += fb_expf(h->out_scale * (float)(last_out[i] - h->out_zp) - mx);
  /* streamed value by value: a graph may return a whole feature map */
  out_str("m-results-[");
  for (uint32_t i = 0; i < n; i++) {
    float v = h->out_scale * (float)(last_out[i] - h->out_zp);
    if (model.head == FB_SOFTMAX) v = fb_expf(v - mx) / sum;
    if (model.head == FB_ARGMAX) v = (int)i == arg ? 1.0f : 0.0f;
    sb_init(&s, num, sizeof num);
    if (i) sb_str(&s, ",");
    sb_f3(&s, v);
    out_str(num);
  }
  out_line("]");
}

static void hex_out(const char *prefix, const int8_t *v, uint32_t n) {
  out_str(prefix);
  static const char hd[] = "0123456789abcdef";
  for (uint32_t i = 0; i < n; i++) {
    emit(hd[((uint8_t)v[i]) >> 4]);
    emit(hd[((uint8_t)v[i]) & 15u]);
  }
  out_str("\r\n");
}

/* ---- commands ---- */
static void cmd_db(const char *arg) {
  uint32_t n;
  if (starts(arg, "load")) {
    if (!parse_u32(arg + 4, &n) || n == 0) {
      out_line("e-[Command 'db load' must be >0 bytes]");
      return;
    }
    if (n > FB_DB_MAX) {
      err_line("Supplied buffer size ", n, " exceeds maximum of the db buffer");
      return;
    }
    db_expect = n;
    db_pos = 0;
    fb_sb_t s;
    sb_init(&s, msg, sizeof msg);
    sb_str(&s, "m-[Expecting ");
    sb_u64(&s, n);
    sb_str(&s, " bytes]");
    out_line(msg);
    return;
  }
  if (starts(arg, "print")) {
    for (uint32_t i = 0; i < db_pos; i += 8) {
      fb_sb_t s;
      sb_init(&s, msg, sizeof msg);
      sb_str(&s, "m-buffer-");
      for (uint32_t k = i; k < i + 8 && k < db_pos; k++) {
        if (k > i) sb_str(&s, "-");
        sb_hex8(&s, db[k]);
      }
      out_line(msg);
    }
    return;
  }
  uint32_t len = 0;
  while (arg[len]) len++;
  if (len & 1u) {
    out_line("e-[Insufficent number of hex digits]");
    return;
  }
  for (uint32_t i = 0; i < len; i += 2) {
    int a = hexval(arg[i]), b = hexval(arg[i + 1]);
    if (a < 0 || b < 0) {
      out_line("e-[Invalid hex digit]");
      return;
    }
    if (db_pos < db_expect) db[db_pos++] = (uint8_t)(a << 4 | b);
  }
  if (db_expect && db_pos == db_expect) out_line("m-load-done");
}

static void cmd_infer(const char *arg) {
  uint32_t n = 1, w = 10; /* the reference default W is 10 */
  const char *p = parse_u32(arg, &n);
  if (p) parse_u32(p, &w);
  if (!p || (int32_t)n <= 0) {
    out_line("e-[Inference iterations must be >0]");
    return;
  }
  if (!need_model()) return;
  if (db_pos < model.h->in_dim) {
    err_line("Input holds ", db_pos, " bytes but the model expects more: load it with db or bulk db");
    return;
  }
  const int8_t *in = (const int8_t *)db;
  fb_sb_t s;
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "m-warmup-start-");
  sb_u64(&s, w);
  out_line(msg);
  for (uint32_t i = 0; i < w; i++) th_infer(in);
  out_line("m-warmup-done");
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "m-infer-start-");
  sb_u64(&s, n);
  out_line(msg);
  /* Both timestamps are taken around the loop and printed after it, so UART time never enters
   * the timed section (deterministic under QEMU -icount). */
  board_ticks_restart();
  board_marker(1);
  uint64_t t0 = board_ticks();
  for (uint32_t i = 0; i < n; i++) th_infer(in);
  uint64_t t1 = board_ticks();
  board_marker(0);
  last_ticks = t1 - t0;
  last_n = n;
  have_out = 1;
  lap_us(t0);
  lap_us(t1);
  out_line("m-infer-done");
  th_results();
}

static void model_info(void) {
  const fb_header_t *h = model.h;
  fb_sb_t s;
  char id[17];
  for (int i = 0; i < 16; i++) id[i] = h->model_id[i];
  id[16] = 0;
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "m-model-info-[in=");
  sb_u64(&s, h->in_dim);
  sb_str(&s, ",out=");
  sb_u64(&s, h->out_dim);
  sb_str(&s, ",layers=");
  sb_u64(&s, h->n_layers);
  sb_str(&s, ",bytes=");
  sb_u64(&s, h->total_size);
  sb_str(&s, ",crc=");
  sb_hex32(&s, h->crc32);
  sb_str(&s, ",id=");
  sb_str(&s, id);
  sb_str(&s, "]");
  out_line(msg);
}

static void cmd_bulk(const char *arg) {
  int to_model;
  if (starts(arg, "db ")) {
    to_model = 0;
    arg += 3;
  } else if (starts(arg, "model ")) {
    to_model = 1;
    arg += 6;
  } else {
    out_line("e-[bulk: destination must be db or model]");
    return;
  }
  uint32_t len, want = 0;
  const char *p = parse_u32(arg, &len);
  if (!p || len == 0) {
    out_line("e-[bulk: length must be >0]");
    return;
  }
  while (*p == ' ') p++;
  int nd = 0;
  for (; *p; p++, nd++) {
    int v = hexval(*p);
    if (v < 0) break;
    want = want << 4 | (uint32_t)v;
  }
  if (nd != 8 || *p) {
    out_line("e-[bulk: CRC32 must be 8 hex digits]");
    return;
  }
  uint32_t cap = to_model ? FB_MODEL_MAX : FB_DB_MAX;
  if (len > cap) {
    err_line("bulk: ", len, to_model ? " bytes exceed the model area of this board" : " bytes exceed the db buffer of this board");
    return;
  }
  uint8_t *dst = to_model ? model_area : db;
  if (to_model) model.h = 0;
  else {
    db_expect = 0;
    db_pos = 0;
  }
  out_line("m-bulk-go");
  uint32_t state = 0xFFFFFFFFu, got = 0;
  uint64_t gap = 2ull * board_tick_hz(); /* 2 s without a byte aborts the transfer */
  uint64_t deadline = board_ticks() + gap;
  while (got < len) {
    int c = board_getc_until(deadline);
    if (c < 0) break;
    dst[got++] = (uint8_t)c;
    state = fb_crc32_byte(state, (uint8_t)c);
    if ((got & 255u) == 0) deadline = board_ticks() + gap;
  }
  if (got < len) {
    err_line("bulk: timeout after ", got, " bytes");
    return;
  }
  uint32_t crc = ~state;
  if (crc != want) {
    fb_sb_t s;
    sb_init(&s, msg, sizeof msg);
    sb_str(&s, "e-[bulk: CRC mismatch, got ");
    sb_hex32(&s, crc);
    sb_str(&s, " expected ");
    sb_hex32(&s, want);
    sb_str(&s, "]");
    out_line(msg);
    return;
  }
  fb_sb_t s;
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "m-bulk-done-");
  sb_u64(&s, len);
  out_line(msg);
  if (to_model) {
    char err[120];
    if (fb_model_load(model_area, len, &model, err, sizeof err)) {
      out_str("e-[model: ");
      out_str(err);
      out_line("]");
      return;
    }
    have_out = 0;
    model_info();
  } else {
    db_expect = len;
    db_pos = len;
  }
}

static void cmd_xbatch(const char *arg) {
  uint32_t k;
  if (!parse_u32(arg, &k) || k == 0) {
    out_line("e-[xbatch: count must be >0]");
    return;
  }
  if (!need_model()) return;
  uint32_t in = model.h->in_dim;
  if ((uint64_t)k * in > db_pos) {
    err_line("xbatch: the db buffer holds ", db_pos, " bytes, fewer than count x input width");
    return;
  }
  for (uint32_t i = 0; i < k; i++) {
    th_infer((const int8_t *)(db + i * in));
    hex_out("m-xout-", last_out, model.h->out_dim);
  }
  have_out = 1;
}

static void cmd_ext(void) {
  fb_sb_t s;
  out_line("m-ext-[fb1]");
  out_line("m-ext-bulk-[db,model]");
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "m-ext-limits-[model=");
  sb_u64(&s, FB_MODEL_MAX);
  sb_str(&s, ",db=");
  sb_u64(&s, FB_DB_MAX);
  sb_str(&s, ",act=");
  sb_u64(&s, FB_ACT_MAX);
  sb_str(&s, "]");
  out_line(msg);
  out_str("m-ext-kinds-[");
  out_str(fb_kinds);
  out_line("]");
  sb_init(&s, msg, sizeof msg);
  sb_str(&s, "m-ext-tick-hz-");
  sb_u64(&s, board_tick_hz());
  out_line(msg);
  out_line("m-ext-board-[" FB_BOARD_NAME "]");
  out_line("m-ext-crc-[crc32]");
}

static void cmd_xcrc(const char *arg) {
  if (arg[0] == '1' && !arg[1]) {
    crc_on = 1;
    out_line("m-xcrc-on");
  } else if (arg[0] == '0' && !arg[1]) {
    crc_stop = crc_on;
    out_line("m-xcrc-off");
  } else {
    out_line("e-[xcrc: argument must be 1 or 0]");
  }
}

static void dispatch(const char *c) {
  if (starts(c, "name") && !c[4]) {
    out_line("m-name-dut-[" VENDOR "]");
  } else if (starts(c, "profile") && !c[7]) {
    out_line("m-profile-[" FW_VERSION "]");
    out_str("m-model-[");
    if (model.h) {
      char id[17];
      for (int i = 0; i < 16; i++) id[i] = model.h->model_id[i];
      id[16] = 0;
      out_str(id[0] ? id : "none");
    } else {
      out_str("none");
    }
    out_line("]");
  } else if (starts(c, "help") && !c[4]) {
    out_line(FW_VERSION);
    out_line("help         : Print this information");
    out_line("name         : Print the name of the device");
    out_line("profile      : Print the profile and model");
    out_line("timestamp    : Generate a timestamp");
    out_line("db SUBCMD    : Manipulate a generic byte buffer");
    out_line("  load N     : Allocate N bytes and set load counter");
    out_line("  db HH[HH]* : Load 8-bit hex byte(s) until N bytes");
    out_line("  print      : Print the buffer");
    out_line("infer N W    : Load input, execute N inferences after W warmup loops");
    out_line("results      : Return the result fp32 vector");
    out_line("ext          : frugalbench extensions (bulk, model, xres, xstat, xbatch, xcrc)");
  } else if (starts(c, "timestamp") && !c[9]) {
    lap_us(board_ticks());
  } else if (starts(c, "db ")) {
    cmd_db(c + 3);
  } else if (starts(c, "infer") && (c[5] == ' ' || !c[5])) {
    cmd_infer(c + 5);
  } else if (starts(c, "results") && !c[7]) {
    if (need_model()) {
      if (have_out) th_results();
      else out_line("e-[No inference has run yet]");
    }
  } else if (starts(c, "ext") && !c[3]) {
    cmd_ext();
  } else if (starts(c, "bulk ")) {
    cmd_bulk(c + 5);
  } else if (starts(c, "model") && !c[5]) {
    if (need_model()) model_info();
  } else if (starts(c, "xres") && !c[4]) {
    if (need_model()) {
      if (have_out) hex_out("m-xres-", last_out, model.h->out_dim);
      else out_line("e-[No inference has run yet]");
    }
  } else if (starts(c, "xstat") && !c[5]) {
    fb_sb_t s;
    sb_init(&s, msg, sizeof msg);
    sb_str(&s, "m-xstat-ticks-");
    sb_u64(&s, last_ticks);
    sb_str(&s, "-hz-");
    sb_u64(&s, board_tick_hz());
    sb_str(&s, "-n-");
    sb_u64(&s, last_n);
    out_line(msg);
  } else if (starts(c, "xbatch ")) {
    cmd_xbatch(c + 7);
  } else if (starts(c, "xcrc ")) {
    cmd_xcrc(c + 5);
  } else {
    out_str("e-[Unknown command: ");
    out_str(c);
    out_line("]");
  }
}

int main(void) {
  board_init();
  fb_crc32_init();
#if defined(FB_DEFAULT_MODEL)
  {
    /* A model built into the firmware (make MODEL_BLOB=...), read in place from flash. */
    extern const uint8_t fb_default_model[], fb_default_model_end[];
    char err[120];
    fb_model_load(fb_default_model, (uint32_t)(fb_default_model_end - fb_default_model), &model, err, sizeof err);
  }
#endif
  {
    /* A blob preloaded into the model area (QEMU -device loader, or left by a debugger) is adopted
     * if it validates; random RAM never passes the magic + CRC check. */
    char err[120];
    const fb_header_t *h = (const fb_header_t *)(const void *)model_area;
    if (h->magic == FB_MAGIC && h->total_size <= FB_MODEL_MAX) {
      fb_model_t pre;
      if (fb_model_load(model_area, h->total_size, &pre, err, sizeof err) == 0) model = pre;
    }
  }
  out_line("m-timestamp-mode-performance");
  lap_us(board_ticks());
  out_line("m-init-done");
  out_line("m-ready");
  int n = 0, overflow = 0;
  for (;;) {
    int c = board_getc();
    if (c != '%') {
      if (n < CMD_MAX) line[n++] = (char)c;
      else overflow = 1;
      continue;
    }
    line[n] = 0;
    /* Strip CR/LF a terminal may send between commands (the reference firmware would keep them). */
    char *cmd = line;
    while (*cmd == '\r' || *cmd == '\n') cmd++;
    crc_state = 0xFFFFFFFFu;
    for (const char *p = cmd; *p; p++) crc_state = fb_crc32_byte(crc_state, (uint8_t)*p);
    if (overflow) out_line("e-[Command too long]");
    else dispatch(cmd);
    if (crc_on) {
      fb_sb_t s;
      sb_init(&s, msg, sizeof msg);
      sb_str(&s, "m-crc-");
      sb_hex32(&s, ~crc_state);
      out_line(msg);
      if (crc_stop) crc_on = crc_stop = 0;
    }
    out_line("m-ready");
    n = 0;
    overflow = 0;
  }
}
