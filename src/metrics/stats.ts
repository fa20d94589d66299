// Timing statistics as hyperfine reports them: mean ± σ, median, min … max, and outliers by median absolute deviation.

export interface TimingStats {
  runs: number;
  mean: number;
  stddev: number;
  median: number;
  min: number;
  max: number;
  /** Indices of runs more than 3 scaled MADs from the median. */
  outliers: number[];
  /** Every raw timing, in run order. */
  times: number[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function timingStats(times: readonly number[]): TimingStats {
  const n = times.length;
  const mean = times.reduce((a, b) => a + b, 0) / (n || 1);
  const stddev = n > 1 ? Math.sqrt(times.reduce((a, t) => a + (t - mean) ** 2, 0) / (n - 1)) : 0;
  const med = median(times);
  const mad = 1.4826 * median(times.map((t) => Math.abs(t - med)));
  const outliers = mad > 0 ? times.flatMap((t, i) => (Math.abs(t - med) / mad > 3 ? [i] : [])) : [];
  return {
    runs: n,
    mean,
    stddev,
    median: med,
    min: Math.min(...times),
    max: Math.max(...times),
    outliers,
    times: [...times],
  };
}

/** "123.4 ms ± 5.6 ms (min … max: 118.0 … 131.2 ms, 5 runs)" */
export function formatStats(s: TimingStats, unit = 'ms'): string {
  const f = (v: number) => v.toFixed(v >= 100 ? 0 : 1);
  return `${f(s.mean)} ${unit} ± ${f(s.stddev)} ${unit} (min … max: ${f(s.min)} … ${f(s.max)} ${unit}, ${s.runs} runs${s.outliers.length ? `, ${s.outliers.length} outliers` : ''})`;
}
