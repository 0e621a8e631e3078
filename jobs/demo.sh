#!/usr/bin/env bash
# demo.sh - README command 1: the whole mission on real data, on 2 MPI ranks.
#   1. installs what is missing (Debian packages) and builds shardnet;
#   2. converts Fashion-MNIST (Debian's dataset-fashion-mnist) to HDF5;
#   3. trains a ResNet-20 on 2 ranks with synchronized batch norm (data parallel);
#   4. runs distributed inference + feature extraction on the test set into one HDF5 file;
#   5. prints a report and renders the training curve and the confusion matrix as PNG files.
# Settings (environment): SN_DEMO_OUT (default ./demo-out), SN_DEMO_EPOCHS (default 4),
# SN_DEMO_RANKS (2), SN_DEMO_ARCH (resnet20), SN_DEMO_WIDTH (architecture default), SN_DEMO_BATCH (128),
# SN_DEMO_AUGMENT (flip; or crop-flip, none).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${SN_DEMO_OUT:-$PWD/demo-out}"
epochs="${SN_DEMO_EPOCHS:-4}"
ranks="${SN_DEMO_RANKS:-2}"
arch="${SN_DEMO_ARCH:-resnet20}"
batch="${SN_DEMO_BATCH:-128}"
width=()
[[ -n "${SN_DEMO_WIDTH:-}" ]] && width=(--width "$SN_DEMO_WIDTH")
t_start=$(date +%s)

echo "== 1/5 install and build"
"$here/jobs/setup.sh" "$here/build" shardnet_cli >/dev/null
sn="$here/build/shardnet"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE
cores=$(nproc)
threads=$(( cores / ranks )); (( threads < 1 )) && threads=1
mpirun=(mpirun --oversubscribe -q -np "$ranks")
# each rank bound to its own $threads cores (Open MPI alone binds each of up to 2 ranks to ONE
# core, which would halve a single rank's 2 threads); oversubscribed runs are left unbound
(( ranks * threads <= cores )) && mpirun+=(--map-by "slot:PE=$threads")
echo "   built $("$sn" --version); $ranks ranks x $threads threads on $cores cores"

echo "== 2/5 convert Fashion-MNIST to HDF5"
fm=/usr/share/datasets/fashion-mnist
"$sn" convert idx --images $fm/train-images-idx3-ubyte.gz --labels $fm/train-labels-idx1-ubyte.gz \
  --out "$out/fashion_train.h5" --fashion --force --quiet
"$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
  --out "$out/fashion_test.h5" --fashion --force --quiet
echo "   $out/fashion_train.h5 (60000 x 28x28x1), $out/fashion_test.h5 (10000)"

echo "== 3/5 train $arch on $ranks ranks, synchronized batch norm, $epochs epochs"
rm -f "$out/metrics.jsonl" "$out/checkpoint.h5"
t0=$(date +%s)
"${mpirun[@]}" "$sn" train --arch "$arch" "${width[@]}" --input 28x28x1 --data "$out/fashion_train.h5" \
  --val "$out/fashion_test.h5" --epochs "$epochs" --batch "$batch" --lr 0.1 --momentum 0.9 \
  --nesterov --weight-decay 5e-4 --schedule cosine --augment "${SN_DEMO_AUGMENT:-flip}" --bn sync --threads "$threads" \
  --checkpoint "$out/checkpoint.h5" --metrics "$out/metrics.jsonl" --out "$out/${arch}_fashion.h5"
t_train=$(( $(date +%s) - t0 ))

echo "== 4/5 distributed inference and feature extraction on the test set"
t0=$(date +%s)
"${mpirun[@]}" "$sn" infer --arch "$arch" "${width[@]}" --input 28x28x1 --weights "$out/${arch}_fashion.h5" \
  --data "$out/fashion_test.h5" --out "$out/predictions.h5" --logits --features --top-k 3 \
  --batch 250 --threads "$threads" --force --confusion "$out/confusion.tsv" \
  --metrics "$out/infer_metrics.jsonl" | tee "$out/infer_report.txt"
t_infer=$(( $(date +%s) - t0 ))

echo "== 5/5 plots"
# metrics.jsonl -> columns: epoch train_loss train_acc val_loss val_acc images_per_s
awk '{ for (i = 1; i <= NF; i++) { gsub(/[{},"]/, "", $i) }
       for (i = 1; i < NF; i++) v[$i] = $(i + 1)
       print v["epoch:"], v["train_loss:"], v["train_acc:"], v["val_loss:"], v["val_acc:"], v["images_per_s:"] }' \
  "$out/metrics.jsonl" >"$out/metrics.dat"
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 900,500 noenhanced
set output "$out/training_curve.png"
set title "$arch on Fashion-MNIST, $ranks MPI ranks, synchronized batch norm"
set xlabel "epoch"; set ylabel "loss"; set y2label "accuracy (%)"
set ytics nomirror; set y2tics; set key center right; set grid
plot "$out/metrics.dat" using 1:2 with linespoints lw 2 title "train loss", \
     "$out/metrics.dat" using 1:4 with linespoints lw 2 title "test loss", \
     "$out/metrics.dat" using 1:(100*\$3) axes x1y2 with linespoints lw 2 dt 2 title "train accuracy", \
     "$out/metrics.dat" using 1:(100*\$5) axes x1y2 with linespoints lw 2 dt 2 title "test accuracy"
set output "$out/confusion_matrix.png"
set terminal pngcairo size 800,700 noenhanced
set title "Confusion matrix (test set; rows: true class, columns: predicted)"
unset y2tics; unset y2label; set ytics mirror; unset key; unset grid
set xlabel "predicted"; set ylabel "true"
set xtics ("T-shirt" 0, "Trouser" 1, "Pullover" 2, "Dress" 3, "Coat" 4, "Sandal" 5, "Shirt" 6, "Sneaker" 7, "Bag" 8, "Boot" 9) rotate by 45 right
set ytics ("T-shirt" 0, "Trouser" 1, "Pullover" 2, "Dress" 3, "Coat" 4, "Sandal" 5, "Shirt" 6, "Sneaker" 7, "Bag" 8, "Boot" 9)
set yrange [9.5:-0.5]; set xrange [-0.5:9.5]
set palette defined (0 "white", 1 "#9ecae1", 2 "#08519c"); set logscale cb; set cbrange [1:1000]
plot "$out/confusion.tsv" matrix with image, \
     "$out/confusion.tsv" matrix using 1:2:(sprintf("%d", \$3)) with labels font ",9"
GP
  plots="$out/training_curve.png, $out/confusion_matrix.png"
else
  plots="(gnuplot not installed: no PNG files)"
fi

total=$(( $(date +%s) - t_start ))
last=$(tail -1 "$out/metrics.jsonl")
field() { sed -E "s/.*\"$1\": ([0-9.e+-]+).*/\1/" <<<"$last"; }
acc=$(awk '/accuracy on/ {print $(NF-2)}' "$out/infer_report.txt" | head -1)
cat <<REPORT

================================ shardnet demo report ================================
model            $arch, trained $epochs epochs on $ranks MPI ranks x $threads threads, sync BN
test accuracy    ${acc:-?} top-1 (10000 Fashion-MNIST test images; epoch-end evaluation $(awk "BEGIN{printf \"%.2f%%\", 100*$(field val_acc)}"))
training         ${t_train} s, $(field images_per_s) images/s in the last epoch
inference        ${t_infer} s including start-up; $(sed -E 's/.*"images_per_s": ([0-9.]+).*/\1/' "$out/infer_metrics.jsonl" | tail -1) images/s
per-class accuracy and top-k: $out/infer_report.txt
outputs
  weights        $out/${arch}_fashion.h5     (shardnet native HDF5)
  predictions    $out/predictions.h5   (/predictions/top_k_indices, /predictions/top_k_scores,
                                            /logits, /features, /index; attribute complete = 1)
  metrics        $out/metrics.jsonl (one JSON line per epoch)
  plots          $plots
inspect them with
  h5ls -r $out/predictions.h5
  h5dump -d /predictions/top_k_indices -s 0,0 -c 5,3 $out/predictions.h5
  h5dump -A $out/predictions.h5          # architecture, weights checksum, preprocessing, version
total demo time  ${total} s
=======================================================================================
REPORT
