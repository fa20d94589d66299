// Starts one cold start for `gpen-lab bench --cold` and times it from here: a fresh process that holds no CUDA, as a
// shell is. Spawned from the bench's own process, a child takes 25-140 ms longer to reach its own clock (measured on
// an H200 host: fork copies the mappings of a parent holding CUDA sessions and locked memory), which no user pays.
// argv[2]: a JSON LaunchJob, run with this process's environment. Writes one JSON line, a LaunchResult, then waits for
// the child's end. Imports nothing of gpen-lab's: it stays light.
import { spawn } from 'node:child_process';

export interface LaunchJob {
  command: string;
  args: string[];
}

export interface LaunchResult {
  /** Spawn to the child's first stdout line, ms. */
  ms: number;
  /** When the child was spawned: performance.timeOrigin + performance.now() of this process (epoch ms). */
  spawnedAt: number;
  /** The child's first stdout line, or null when it ended without one. */
  line: string | null;
  /** The child's exit code where it ended without a line, and the end of its stderr. */
  code: number | null;
  stderrTail: string;
}

/**
 * Spawns `job` and calls `onLine` at its first stdout line (or at its end, without one); resolves when the child has
 * ended, so that the next cold start does not share the machine with this one's exit.
 */
export function launch(job: LaunchJob, onLine: (r: LaunchResult) => void): Promise<void> {
  const t0 = performance.now();
  const spawnedAt = performance.timeOrigin + t0;
  return new Promise((resolve) => {
    const c = spawn(job.command, job.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let told = false;
    const tell = (r: Omit<LaunchResult, 'spawnedAt'>) => {
      if (told) return;
      told = true;
      onLine({ ...r, spawnedAt });
    };
    c.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    c.stdout.on('data', (d: Buffer) => {
      if (told) return;
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) tell({ ms: performance.now() - t0, line: out.slice(0, nl), code: null, stderrTail: '' });
    });
    c.on('error', (e) => {
      tell({ ms: performance.now() - t0, line: null, code: null, stderrTail: e.message });
      resolve();
    });
    c.on('close', (code) => {
      tell({ ms: performance.now() - t0, line: null, code, stderrTail: err });
      resolve();
    });
  });
}

if (process.argv[1] && /cold-launcher\.[jt]s$/.test(process.argv[1]) && process.argv[2]) {
  await launch(JSON.parse(process.argv[2]) as LaunchJob, (r) => process.stdout.write(`${JSON.stringify(r)}\n`));
}
