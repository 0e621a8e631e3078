/* cmd_convert.c - `shardnet convert idx|folder|list`: datasets into shardnet's HDF5 schema. Under
 * mpirun every rank converts its part and all ranks write the one output file. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char *EXAMPLES =
    "  shardnet convert idx --images train-images-idx3-ubyte.gz --labels "
    "train-labels-idx1-ubyte.gz \\\n"
    "      --out fashion_train.h5 --fashion\n"
    "  mpirun -np 4 shardnet convert folder --root /data/imagenet/train --out train.h5 --size "
    "224x224\n"
    "  shardnet convert folder --root photos/ --out photos.h5 --encoded --bad-images skip\n"
    "  shardnet convert list --list files.txt --out files.h5 --size 224x224\n";

static void progress(void *ctx, int64_t done, int64_t total) {
  char extra[64];
  snprintf(extra, sizeof extra, "%lld/%lld", (long long)done, (long long)total);
  cli_progress((const char *)ctx, (double)done, (double)total, extra);
}

static cli_opt O[] = {
    {"images", 1, "idx: images file (.gz or plain)", NULL},
    {"labels", 1, "idx: labels file (.gz or plain)", NULL},
    {"fashion", 0, "idx: Fashion-MNIST class names (default: digits)", NULL},
    {"root", 1, "folder: the folder of images (class sub-folders: --labels-from)", NULL},
    {"list", 1, "list: text file of image paths, one per line (optional label column)", NULL},
    {"labels-from", 1, "folder: auto|folders|none (default auto)", NULL},
    {"bad-images", 1, "folder, list: fail|skip (default fail)", NULL},
    {"out", 1, "output HDF5 file", NULL},
    {"force", 0, "replace an existing output", NULL},
    {"encoded", 0, "folder, list: store the JPEG/PNG bytes (decoded when read)", NULL},
    {"size", 1, "folder, list: decode target HxW (default 224x224)", NULL},
    {"channels", 1, "folder, list: 1 or 3 (default 3)", NULL},
    {"resize", 1, "raw: bilinear|nearest (default bilinear)", NULL},
    {"resize-shorter", 1, "raw: shorter side to S, then centre crop (torchvision)", NULL},
    {"compression", 1, "gzip level 0-9 for /images (default 0)", NULL},
    {"quiet", 0, "no progress bar", NULL},
    {"help", 0, "show this help", NULL}};
enum { NO = sizeof O / sizeof O[0] };

/* The converter options and the rules for the output (not an input, not replaced without
 * --force). Returns 0 or EXIT_USAGE after the message. */
static int parse_options(sn_convert_options *opt, const char *out) {
  sn_convert_options_init(opt);
  long v;
  if (cli_int(O, NO, "channels", 1, 3, 3, &v)) return EXIT_USAGE;
  if (v != 1 && v != 3) {
    cli_error("option --channels: must be 1 or 3");
    return EXIT_USAGE;
  }
  opt->channels = (int)v;
  if (cli_int(O, NO, "compression", 0, 9, 0, &v)) return EXIT_USAGE;
  opt->compression = (int)v;
  if (cli_int(O, NO, "resize-shorter", 1, 65536, 0, &v)) return EXIT_USAGE;
  opt->resize_shorter = (int)v;
  const char *size = cli_get(O, NO, "size");
  if (size) {
    int hh, ww;
    char extra;
    if (sscanf(size, "%dx%d%c", &hh, &ww, &extra) != 2 || hh <= 0 || ww <= 0 || hh > 16384 ||
        ww > 16384) {
      cli_error("option --size: '%s' is not HxW (e.g. 224x224)", size);
      return EXIT_USAGE;
    }
    opt->height = hh;
    opt->width = ww;
  }
  const char *rs = cli_get(O, NO, "resize");
  if (rs && strcmp(rs, "bilinear") && strcmp(rs, "nearest")) {
    cli_error("option --resize: '%s' is not bilinear or nearest", rs);
    return EXIT_USAGE;
  }
  if (rs) opt->resize = !strcmp(rs, "nearest") ? SN_RESIZE_NEAREST : SN_RESIZE_BILINEAR;
  opt->encoded = cli_has(O, NO, "encoded");
  if (opt->encoded && (rs || opt->resize_shorter || opt->compression)) {
    cli_error(
        "convert: --encoded stores the files' bytes as they are; --resize, --resize-shorter and "
        "--compression apply to raw datasets only (resizing happens when an encoded dataset is "
        "read)");
    return EXIT_USAGE;
  }
  opt->fashion = cli_has(O, NO, "fashion");
  if (cli_input_options(O, NO, &opt->labels_from, &opt->bad_images)) return EXIT_USAGE;
  opt->progress = progress;
  opt->progress_ctx = (void *)"convert";
  const char *ins[] = {cli_get(O, NO, "images"), cli_get(O, NO, "labels"), cli_get(O, NO, "root"),
                       cli_get(O, NO, "list")};
  char rout[PATH_MAX], rin[PATH_MAX];
  for (int i = 0; i < 4; ++i)
    if (ins[i] && realpath(out, rout) && realpath(ins[i], rin) && !strcmp(rin, rout)) {
      cli_error("convert: output %s is one of the inputs", out);
      return EXIT_USAGE;
    }
  struct stat st;
  if (!cli_has(O, NO, "force") && stat(out, &st) == 0) {
    cli_error("convert: output %s exists (use --force to replace it)", out);
    return EXIT_USAGE;
  }
  return 0;
}

/* Converts images (folder or list). */
static sn_status convert_images(const char *kind, cli_job *job, const char *out,
                                sn_convert_options *opt) {
  const int folder = !strcmp(kind, "folder");
  const char *in = cli_get(O, NO, folder ? "root" : "list");
  if (!in)
    return sn_error_set(SN_ERR_INVALID, "convert %s: --%s is required", kind,
                        folder ? "root" : "list");
  opt->threads = job->threads;
  return folder ? sn_convert_folder(in, out, job->comm, opt)
                : sn_convert_images(&in, 1, out, job->comm, opt, NULL);
}

/* "wrote ..." and what was left out, from the file written (rank 0). */
static void report(const char *out, double secs) {
  sn_dataset *ds;
  if (sn_dataset_open(out, sn_comm_serial(), &ds) != SN_OK) return;
  const sn_dataset_info *i = sn_dataset_get_info(ds);
  char lf[32] = "", src[64] = "";
  int64_t skipped = -1;
  if (sn_file_attr_str(out, "labels_from", lf, sizeof lf) == SN_OK)
    snprintf(src, sizeof src, " (labels from %s)", lf);
  printf("wrote %s: %lld images %dx%dx%d%s, %d classes%s in %.1f s\n", out, (long long)i->n, i->h,
         i->w, i->c, i->encoded ? " (encoded)" : "", i->num_classes, src, secs);
  if (sn_file_rows(out, "skipped/index", &skipped) == SN_OK && skipped > 0)
    printf("skipped %lld bad image%s (listed in /skipped of %s)\n", (long long)skipped,
           skipped == 1 ? "" : "s", out);
  sn_dataset_close(ds);
}

int cmd_convert(int argc, char **argv) {
  const char *kind = argc > 2 ? argv[2] : NULL;
  if (kind && (!strcmp(kind, "--help") || !strcmp(kind, "-h"))) {
    cli_print_help(stdout, "convert", "idx|folder|list [options]", EXAMPLES, O, NO);
    return 0;
  }
  if (!kind || (strcmp(kind, "idx") && strcmp(kind, "folder") && strcmp(kind, "list"))) {
    cli_error("convert: the first argument must be idx, folder or list (see 'shardnet convert "
              "--help')");
    return EXIT_USAGE;
  }
  if (cli_parse("convert", argc, argv, 3, O, NO)) return EXIT_USAGE;
  if (cli_has(O, NO, "help")) {
    cli_print_help(stdout, "convert", "idx|folder|list [options]", EXAMPLES, O, NO);
    return 0;
  }
  if (cli_has(O, NO, "quiet")) cli_verbose = 0;
  const char *out = cli_get(O, NO, "out");
  if (!out) {
    cli_error("convert: --out is required");
    return EXIT_USAGE;
  }
  sn_convert_options opt;
  if (parse_options(&opt, out)) return EXIT_USAGE;
  cli_job job;
  int rc = cli_job_start(&job, &argc, &argv, 0);
  if (rc) return rc;
  double t0 = cli_now();
  sn_status s;
  if (!strcmp(kind, "idx")) {
    const char *im = cli_get(O, NO, "images"), *lb = cli_get(O, NO, "labels");
    if (!im || !lb)
      s = sn_error_set(SN_ERR_INVALID, "convert idx: --images and --labels are required");
    else
      s = sn_convert_idx(im, lb, out, job.comm, &opt);
  } else {
    s = convert_images(kind, &job, out, &opt);
  }
  cli_check(&job, s);
  if (job.rank == 0 && cli_verbose) report(out, cli_now() - t0);
  return cli_job_end(&job, 0);
}
