# bench/plot.gp: draw bench/results/bench.{svg,png} from read.dat and
# hotplug.dat, both written by bench/plot.sh (run that, not this).
# Variables set by plot.sh with -e: outdir, plottitle.
if (!exists("outdir")) outdir = "bench/results"
if (!exists("plottitle")) plottitle = "cpuhp_bench"
readdat = outdir . "/read.dat"
hpdat = outdir . "/hotplug.dat"

set datafile missing "NaN"

# Bar labels: 3 significant digits, no exponent.
fmt(v) = (v >= 100) ? sprintf('%.0f', v) : sprintf('%.3g', v)

# Log-scale range of the read panel: a decade-ish of room around the data,
# headroom above the tallest bar for its label.
stats readdat using 2 name "R1" nooutput
stats readdat using 3 name "R2" nooutput
lo = (R1_min < R2_min) ? R1_min : R2_min
hi = (R1_max > R2_max) ? R1_max : R2_max
ylo = 10.0**floor(log10(lo) - 0.15)
yhi = hi * 3

# Draw both panels on the current terminal.
draw_all = "\
set multiplot layout 1,2 title plottitle font ',13'; \
  unset logscale; \
  set title 'Read lock + unlock pair (real time, lower is better)'; \
  set style data histogram; \
  set style histogram clustered gap 1; \
  set style fill solid 0.85 border -1; \
  set boxwidth 0.9; \
  set logscale y 10; \
  set yrange [ylo:yhi]; \
  set ylabel 'ns per pair (log scale)'; \
  set xlabel \"at 2 threads: wall time / pairs of both threads\"; \
  set grid ytics mytics; \
  set xtics rotate by 30 right nomirror scale 0; \
  set key top left; \
  plot readdat using 2:xtic(1) title '1 thread' lc rgb '#4477aa', \
       '' using 3 title '2 threads' lc rgb '#ee6677', \
       '' using ($0-1.0/6):($2*1.2):(fmt($2)) with labels font ',8' notitle, \
       '' using ($0+1.0/6):($3*1.2):(fmt($3)) with labels font ',8' notitle; \
  unset logscale y; \
  set title 'Hotplug cycle: one CPU down and up, 2 reader threads running (real time)'; \
  set style data histogram; \
  set style histogram clustered gap 1; \
  set boxwidth 0.6; \
  set yrange [0:*]; \
  set ylabel 'µs per cycle'; \
  set xlabel 'registered hotplug states'; \
  set xtics norotate; \
  set grid ytics nomytics; \
  set offsets 0, 0, graph 0.1, 0; \
  unset key; \
  plot hpdat using 2:xtic(1) lc rgb '#228833', \
       '' using ($0):($2):(fmt($2)) with labels offset 0,0.7 font ',9' notitle; \
  set offsets 0, 0, 0, 0; \
unset multiplot"

set terminal svg size 1200,520 dynamic noenhanced font 'sans,11' background rgb 'white'
set output outdir . "/bench.svg"
eval draw_all

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1200,520 noenhanced font 'sans,10' background rgb 'white'
} else {
  set terminal png size 1200,520 noenhanced background rgb 'white'
}
set output outdir . "/bench.png"
eval draw_all
set output
