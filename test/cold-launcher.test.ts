// The cold-start launcher (src/lab/cold-launcher.ts): times a child from its spawn to its first stdout line, from a
// process that holds no CUDA, and ends only after the child so that cold starts do not overlap.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { LaunchResult } from '../src/lab/cold-launcher.js';
import { launch } from '../src/lab/cold-launcher.js';

describe('the cold-start launcher', () => {
  it('reports the first line and its time, then waits for the child to end', async () => {
    // the child prints its clock's origin and pid, then runs until this test signals it (after the line was reported)
    const child =
      'process.on("SIGUSR2", () => process.exit(0)); setInterval(() => undefined, 1 << 30);' +
      ' console.log(JSON.stringify({ origin: performance.timeOrigin, pid: process.pid }));';
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    let got: LaunchResult | null = null;
    let gotAt = 0;
    let aliveAtLine = false;
    const t0 = performance.now();
    await launch({ command: process.execPath, args: ['-e', child] }, (r) => {
      got = r;
      gotAt = performance.now() - t0;
      const { pid } = JSON.parse(r.line!) as { pid: number };
      aliveAtLine = alive(pid);
      process.kill(pid, 'SIGUSR2');
    });
    assert.ok(got, 'the line was reported');
    const r = got as LaunchResult;
    const { origin, pid } = JSON.parse(r.line!) as { origin: number; pid: number };
    // the child's clock starts after its spawn, and the line comes before its end
    assert.ok(
      origin > r.spawnedAt && origin - r.spawnedAt < r.ms,
      `origin ${origin - r.spawnedAt} ms after the spawn, line at ${r.ms} ms`,
    );
    assert.ok(r.ms <= gotAt + 1);
    // the child ran on after its line until told to end, and had ended (reaped) when launch resolved
    assert.ok(aliveAtLine, 'the child was running when its line was reported');
    assert.equal(alive(pid), false, 'the launcher waited for the child to end');
    assert.equal(r.code, null);
  });

  it('a child that ends without a line: its exit code and the end of its stderr', async () => {
    let got: LaunchResult | null = null;
    await launch(
      { command: process.execPath, args: ['-e', 'console.error("no face model"); process.exit(3)'] },
      (r) => {
        got = r;
      },
    );
    const r = got as unknown as LaunchResult;
    assert.equal(r.line, null);
    assert.equal(r.code, 3);
    assert.match(r.stderrTail, /no face model/);
  });

  it('a command that cannot start is reported, not thrown', async () => {
    let got: LaunchResult | null = null;
    await launch({ command: '/nonexistent/node', args: [] }, (r) => {
      got = r;
    });
    const r = got as unknown as LaunchResult;
    assert.equal(r.line, null);
    assert.match(r.stderrTail, /ENOENT/);
  });

  it('run as a script, it prints the result as one JSON line', async () => {
    const job = { command: process.execPath, args: ['-e', 'console.log("ready")'] };
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'src/lab/cold-launcher.ts', JSON.stringify(job)],
        { timeout: 60_000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      );
    });
    const r = JSON.parse(out.trim()) as LaunchResult;
    assert.equal(r.line, 'ready');
    assert.ok(r.ms > 0 && r.spawnedAt > 0);
  });
});
