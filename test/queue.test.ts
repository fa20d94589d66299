// The queue against a real Redis (test/helpers/redis.ts: Debian's redis-server on loopback, AOF fsynced at every
// write): three worker processes and a submitter on 300 aligned 64x64 images and the identity model, one worker
// killed with SIGKILL mid-run and Redis restarted mid-run; poison inputs, a transient failure retried, the same
// submission twice (also after the completed jobs were trimmed), a password, TLS, and a command cell refused by a
// worker started without --allow-commands.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { decoded, images, joined, jobsOf, startCli, stop } from './helpers/queue.js';
import { psnrFloat } from '../src/metrics/quality.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-queue-'));
const MODEL = path.join(tmp, 'identity-64.onnx');
const ENV = { ...process.env, CI: 'true' };
const CLI = ['--import', 'tsx', path.join(REPO, 'src/cli/index.ts')];
let redis: RedisServer;
const children = new Set<ChildProcess>();

const cli = (args: string[]) =>
  spawnSync(process.execPath, [...CLI, ...args], { cwd: REPO, encoding: 'utf8', env: ENV, timeout: 120_000 });

const start = (args: string[]) => startCli(args, ENV, children);
const psnr = (a: Buffer, b: Buffer) => psnrFloat(a, b, 255);

const worker = (url: string, queue: string, ...more: string[]) =>
  start([
    'worker',
    '--redis',
    url,
    '--queue',
    queue,
    '--model',
    MODEL,
    '--provider',
    'cpu',
    '--lock-ms',
    '2000',
    '--json',
    ...more,
  ]);

before(async () => {
  redis = await startRedis();
  const r = cli(['model', 'synth', '--size', '64', '--kind', 'identity', '-o', MODEL]);
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('queue workers on a real Redis', () => {
  it('three workers and a submitter: 300 images, a worker SIGKILLed and Redis restarted mid-run, every output once and whole', async () => {
    const inputs = await images(path.join(tmp, 'many'), 300);
    const out = path.join(tmp, 'many-out');
    const workers = [worker(redis.url, 'many'), worker(redis.url, 'many'), worker(redis.url, 'many')];
    const ids = await Promise.all(workers.map(joined));
    const sub = start([
      'submit',
      path.join(tmp, 'many'),
      '-o',
      out,
      '--redis',
      redis.url,
      '--queue',
      'many',
      '--aligned',
      '--json',
    ]);
    // the first worker killed once it has done some jobs and holds others
    await workers[0].out.waitFor(/"event":"done"/, 10);
    workers[0].child.kill('SIGKILL');
    await workers[0].exited;
    // Redis restarted once the others have done a third of the work between them
    const third = Promise.race([
      workers[1].out.waitFor(/"event":"done"/, 100),
      workers[2].out.waitFor(/"event":"done"/, 100),
    ]);
    await third;
    await redis.restart();
    const code = await sub.exited;
    assert.equal(code, 0, `${sub.out.text}\n${sub.err.text}`);
    const end = JSON.parse(sub.out.text.trim().split('\n').at(-1)!) as {
      end: { done: number; failed: number; queued: number };
    };
    assert.deepEqual([end.end.queued, end.end.done, end.end.failed], [300, 300, 0]);
    // every output there once, whole (no temporary file left), and the identity of its input
    const names = readdirSync(out).sort();
    assert.deepEqual(names, inputs.map((f) => `${path.parse(f).name}_GPEN.png`).sort());
    for (const [i, f] of inputs.entries()) {
      const a = await decoded(f);
      const b = await decoded(path.join(out, `${path.parse(f).name}_GPEN.png`));
      assert.ok(psnr(a, b) > 40, `${names[i]}: PSNR ${psnr(a, b)}`);
    }
    // the killed worker's jobs were taken by the others: every job completed, none by a worker that was not there
    const q = await jobsOf(redis.port, 'many');
    try {
      assert.deepEqual(q.counts, { completed: 300, failed: 0, waiting: 0, active: 0, delayed: 0 });
      for (const w of new Set(q.processedBy))
        assert.ok(
          ids.some((x) => x.id === w),
          `processed by ${w}`,
        );
    } finally {
      await q.close();
    }
    await Promise.all(workers.slice(1).map(stop));
  });

  it('poison inputs fail with their codes and are not retried; a transient failure is retried with backoff', async () => {
    const dir = path.join(tmp, 'poison');
    await images(dir, 2);
    writeFileSync(path.join(dir, 'truncated.png'), readFileSync(path.join(dir, 'img000.png')).subarray(0, 60));
    writeFileSync(path.join(dir, 'text.png'), 'not an image at all\n');
    const w = worker(redis.url, 'poison');
    await joined(w);
    const r = cli([
      'submit',
      dir,
      '-o',
      path.join(tmp, 'poison-out'),
      '--redis',
      redis.url,
      '--queue',
      'poison',
      '--aligned',
      '--json',
    ]);
    assert.equal(r.status, 3, r.stderr);
    const s = JSON.parse(cli(['jobs', '--redis', redis.url, '--queue', 'poison', '--json']).stdout) as {
      failures: { input: string; code: string; attempts: number }[];
    };
    const byName = Object.fromEntries(s.failures.map((f) => [path.basename(f.input), f]));
    assert.deepEqual(Object.keys(byName).sort(), ['text.png', 'truncated.png']);
    assert.match(byName['truncated.png'].code, /^E_IMAGE_CORRUPT$|^E_FORMAT_UNKNOWN$/);
    assert.equal(byName['text.png'].code, 'E_FORMAT_UNKNOWN');
    for (const f of s.failures) assert.equal(f.attempts, 1, `${f.input} was tried again`);
    // retried by hand: back on the queue, failed again with the same codes
    const retried = cli(['jobs', '--redis', redis.url, '--queue', 'poison', '--retry']);
    assert.match(retried.stderr, /2 failed job\(s\) put back on the queue/);
    await w.out.waitFor(/"event":"failed".*"final":true/, 4);
    const again = JSON.parse(cli(['jobs', '--redis', redis.url, '--queue', 'poison', '--json']).stdout) as {
      failures: { input: string; code: string }[];
    };
    assert.deepEqual(again.failures.map((f) => f.code).sort(), s.failures.map((f) => f.code).sort());

    // the output folder's place taken by a file: E_WRITE, a runtime failure, retried once the place is free
    const blocked = path.join(tmp, 'blocked');
    writeFileSync(blocked, 'in the way');
    const sub = start([
      'submit',
      path.join(dir, 'img001.png'),
      '-o',
      blocked,
      '--redis',
      redis.url,
      '--queue',
      'poison',
      '--aligned',
      '--json',
    ]);
    const retry = JSON.parse((await w.out.waitFor(/"event":"failed".*"final":false/))[0]) as {
      code: string;
      job: string;
    };
    assert.equal(retry.code, 'E_WRITE');
    rmSync(blocked);
    assert.equal(await sub.exited, 0, sub.err.text);
    const q = await jobsOf(redis.port, 'poison');
    try {
      const job = await q.job(retry.job);
      assert.equal(job?.attemptsMade, 2);
      assert.ok(job?.returnvalue, 'completed on its second try');
    } finally {
      await q.close();
    }
    await stop(w);
  });

  it('the same submission twice does nothing the second time, also after the completed jobs were trimmed', async () => {
    const dir = path.join(tmp, 'twice');
    await images(dir, 12);
    const out = path.join(tmp, 'twice-out');
    const w = worker(redis.url, 'twice');
    await joined(w);
    const args = ['submit', dir, '-o', out, '--redis', redis.url, '--queue', 'twice', '--aligned', '--json'];
    const first = JSON.parse(cli(args).stdout.split('\n')[0]) as { submission: { queued: number } };
    assert.equal(first.submission.queued, 12);
    const again = JSON.parse(cli(args).stdout.split('\n')[0]) as {
      submission: { queued: number; skippedDone: number };
    };
    assert.deepEqual([again.submission.queued, again.submission.skippedDone], [0, 12]);
    const trim = cli(['jobs', '--redis', redis.url, '--queue', 'twice', '--trim', '--json']);
    assert.match(trim.stderr, /12 completed job\(s\) removed/);
    assert.equal((JSON.parse(trim.stdout) as { counts: { completed: number } }).counts.completed, 0);
    const third = JSON.parse(cli(args).stdout.split('\n')[0]) as {
      submission: { queued: number; skippedDone: number };
    };
    assert.deepEqual([third.submission.queued, third.submission.skippedDone], [0, 12]);
    // other options are other work
    const alpha = JSON.parse(cli([...args, '--alpha', '0.5', '--no-wait']).stdout) as {
      submission: { queued: number };
    };
    assert.equal(alpha.submission.queued, 12);
    await stop(w);
  });

  it('a lab command cell sent to a worker started without --allow-commands fails with E_NOT_ALLOWED; a gpen-lab cell runs there', async () => {
    // one worker serving two queues
    const w = worker(redis.url, 'cells-b,cells');
    assert.deepEqual(((await joined(w)) as unknown as { queues: string[] }).queues, ['cells-b', 'cells']);
    const face = (await images(path.join(tmp, 'cells-in'), 1))[0];
    const cfg = path.join(tmp, 'cells.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        inputs: [face],
        aligned: true,
        model: { identity: 64 },
        coldRuns: 1,
        warmRuns: 0,
        cells: [
          { id: 'cpu-fp32', provider: 'cpu', precision: 'fp32', launcher: { type: 'queue', queue: 'cells' } },
          {
            id: 'copy',
            command: { argv: ['cp', '{input}', '{output}'] },
            gpu: false,
            launcher: { type: 'queue', queue: 'cells' },
          },
        ],
      }),
    );
    const labOut = path.join(tmp, 'cells-lab');
    const r = cli(['lab', cfg, '--out', labOut, '--redis', redis.url, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(readFileSync(path.join(labOut, 'results.json'), 'utf8')) as {
      cells: {
        id: string;
        stages: Record<string, { ok: boolean; reason: string | null } | null>;
        env: { launcher: string; host: string };
        restore: { outputs: { gpen: string } } | null;
      }[];
    };
    const [own, copy] = res.cells;
    assert.equal(own.stages.output?.ok, true, JSON.stringify(own.stages));
    assert.match(own.env.launcher, /^queue cells at redis:\/\/127\.0\.0\.1:\d+\/? \(worker /);
    assert.equal(own.env.host, os.hostname());
    // its output brought back into this lab's folder
    assert.ok(own.restore?.outputs.gpen.startsWith(path.join(labOut, 'cells', 'cpu-fp32')), own.restore?.outputs.gpen);
    assert.ok(psnr(await decoded(face), await decoded(own.restore!.outputs.gpen)) > 40);
    assert.equal(copy.stages.startup?.ok, false);
    assert.match(copy.stages.startup!.reason!, /E_NOT_ALLOWED/);
    assert.match(copy.stages.startup!.reason!, /--allow-commands/);
    await stop(w);
  });
});

describe('Redis with a password and with TLS', () => {
  it('a password in the URL works; a wrong one is E_NETWORK saying where the password goes', async () => {
    const server = await startRedis({ password: 'sesame' });
    try {
      const bad = cli(['jobs', '--redis', server.url.replace('sesame', 'wrong')]);
      assert.equal(bad.status, 3);
      assert.match(bad.stderr, /E_NETWORK|did not answer/);
      assert.match(bad.stderr, /redis:\/\/:PASSWORD@/);
      assert.doesNotMatch(bad.stderr, /wrong/, 'the password is not printed');
      const w = worker(server.url, 'pw');
      await joined(w);
      const dir = path.join(tmp, 'pw');
      await images(dir, 3);
      const r = cli([
        'submit',
        dir,
        '-o',
        path.join(tmp, 'pw-out'),
        '--redis',
        server.url,
        '--queue',
        'pw',
        '--aligned',
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readdirSync(path.join(tmp, 'pw-out')).length, 3);
      await stop(w);
    } finally {
      await server.stop();
    }
  });

  it('rediss:// with the test CA works; without it the server certificate is refused with E_NETWORK', async () => {
    const server = await startRedis({ tls: true });
    try {
      const bad = cli(['jobs', '--redis', server.url]);
      assert.equal(bad.status, 3);
      assert.match(bad.stderr, /certificate/i);
      const w = worker(server.url, 'tls', '--redis-ca', server.ca!);
      await joined(w);
      const dir = path.join(tmp, 'tls');
      await images(dir, 3);
      const r = cli([
        'submit',
        dir,
        '-o',
        path.join(tmp, 'tls-out'),
        '--redis',
        server.url,
        '--redis-ca',
        server.ca!,
        '--queue',
        'tls',
        '--aligned',
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readdirSync(path.join(tmp, 'tls-out')).length, 3);
      await stop(w);
    } finally {
      await server.stop();
    }
  });
});
