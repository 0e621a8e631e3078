/* error.c - sn_status values and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "comm_impl.h"

static _Thread_local char sn_err_msg[1024];
static int sn_err_rank = 0, sn_err_size = 1;

void sn_error_set_rank(int rank, int size) {
  sn_err_rank = rank;
  sn_err_size = size;
}

const char *sn_last_error(void) { return sn_err_msg; }

void sn_error_clear(void) { sn_err_msg[0] = '\0'; }

sn_status sn_error_set(sn_status s, const char *fmt, ...) {
  char body[sizeof sn_err_msg - 32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  /* Keep the message on one line. */
  for (char *p = body; *p; ++p)
    if (*p == '\n' || *p == '\r') *p = ' ';
  if (sn_err_size > 1 && strncmp(body, "rank ", 5) != 0) {
    /* A message that wraps an earlier one ("epoch 3: <last error>") names the rank once, first */
    char own[32];
    snprintf(own, sizeof own, "rank %d: ", sn_err_rank);
    char *dup = strstr(body, own);
    if (dup) memmove(dup, dup + strlen(own), strlen(dup + strlen(own)) + 1);
    snprintf(sn_err_msg, sizeof sn_err_msg, "rank %d: %s", sn_err_rank, body);
  } else
    snprintf(sn_err_msg, sizeof sn_err_msg, "%s", body);
  return s;
}

const char *sn_status_string(sn_status s) {
  switch (s) {
  case SN_OK:
    return "ok";
  case SN_ERR_INVALID:
    return "invalid argument";
  case SN_ERR_SHAPE:
    return "shape mismatch";
  case SN_ERR_IO:
    return "I/O error";
  case SN_ERR_FORMAT:
    return "malformed file";
  case SN_ERR_NOMEM:
    return "out of memory";
  case SN_ERR_NUMERIC:
    return "non-finite value";
  case SN_ERR_COMM:
    return "communication error";
  case SN_ERR_NOTFOUND:
    return "not found";
  }
  return "unknown error";
}
