#define _GNU_SOURCE
/* signals.c - stop requests from a scheduler or a user: SIGTERM, SIGINT and SIGUSR1 (what Slurm
 * sends with --signal, and what mpirun forwards to every rank). The handler only records the
 * signal; the training loop reads it at its next step boundary and the ranks agree on it there
 * (cli_check_flags), so a signal that reaches one rank stops all of them at the same step. A
 * second signal ends the process at once. The library never installs handlers: only jobs/ does.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t stop_sig, stop_count;

static void on_stop(int sig) {
  if (stop_count++ == 0) {
    stop_sig = sig;
    return;
  }
  static const char msg[] =
      "shardnet: second signal: exiting at once (the last checkpoint written is kept)\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  signal(sig, SIG_DFL);
  raise(sig);
}

void cli_catch_stop_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sa.sa_flags = SA_RESTART; /* reads and writes in progress carry on */
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM); /* one handler at a time: the count stays exact */
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGUSR1);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
}

void cli_ignore_stop_signals(void) {
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
}

unsigned cli_stop_flags(void) {
  switch (stop_sig) {
  case SIGTERM:
    return CLI_STOP_TERM;
  case SIGINT:
    return CLI_STOP_INT;
  case SIGUSR1:
    return CLI_STOP_USR1;
  }
  return 0;
}

const char *cli_stop_name(unsigned flags) {
  return flags & CLI_STOP_TERM   ? "SIGTERM"
         : flags & CLI_STOP_INT  ? "SIGINT"
         : flags & CLI_STOP_USR1 ? "SIGUSR1"
                                 : "no signal";
}

void cli_check_flags(cli_job *job, sn_status s, unsigned *flags) {
  if (job->mpi)
    sn_mpi_check_flags(job->comm, s, flags, 600.0, "shardnet");
  else
    cli_check(job, s);
}
