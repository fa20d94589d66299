// `--runtime ort1.19-cuda12` end to end on the CPU, each command in a process of its own with 1.19.2's library
// fetched into a temporary cache (npm pack from the registry, as test/runtime-builds.test.ts does): restore writes the
// image through 1.19's C API, detector included, and its process never maps onnxruntime-node's binding or library
// (read from /proc/self/maps at exit by a hook the test preloads); model run, bench, serve and a lab cell the same;
// the combinations the build lacks and a build not installed are coded errors naming --runtime.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RestoreResult } from '../src/face/restore.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { normalizeConfig } from '../src/lab/config.js';
import { runLab } from '../src/lab/runner.js';
import { ensureBuildLibrary } from '../src/runtime/build-fetch.js';
import { buildLibraryPath } from '../src/runtime/builds.js';
import { readLines } from './helpers/signals.js';
import { useTempCache } from './helpers/cache-dir.js';

const OLD = 'ort1.19-cuda12';
const FACE = path.resolve('assets/demo-face.png');
const tmp = useTempCache('gpen-runtime-cli-');
const cache = process.env.GPEN_LAB_CACHE!;
const HOOK = path.join(tmp, 'maps-at-exit.mjs');

/** The ONNX Runtime files a process mapped, written at its exit to the file its GPEN_TEST_MAPS names. */
const HOOK_SOURCE = `import { readFileSync, writeFileSync } from 'node:fs';
process.on('exit', () => {
  const lines = readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => /onnxruntime/.test(l));
  writeFileSync(process.env.GPEN_TEST_MAPS, JSON.stringify([...new Set(lines.map((l) => l.slice(l.indexOf('/'))))]));
});
`;

let n = 0;
/** Runs the CLI with `args` against the cache holding 1.19's library; its status, output and mapped files. */
function cli(args: string[], env: Record<string, string> = {}) {
  const maps = path.join(tmp, `maps-${n++}.json`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, GPEN_LAB_CACHE: cache, NODE_OPTIONS: `--import=${HOOK}`, GPEN_TEST_MAPS: maps, ...env },
  });
  const mapped = existsSync(maps) ? (JSON.parse(readFileSync(maps, 'utf8')) as string[]) : null;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, mapped };
}

/** What a process of 1.19 maps of ONNX Runtime: 1.19.2's library alone, never onnxruntime-node's binding. */
function assertOnly119(mapped: string[] | null): void {
  assert.deepEqual(mapped, [buildLibraryPath(OLD, cache)]);
}

before(async () => {
  writeFileSync(HOOK, HOOK_SOURCE);
  await ensureBuildLibrary(OLD, { cacheDir: cache });
});

describe('restore --runtime ort1.19-cuda12 --provider cpu', () => {
  it('writes the restored image through 1.19.2 (GPEN and the detector on its C API) and never loads the binding', () => {
    const out = path.join(tmp, 'restore');
    const r = cli(['restore', FACE, '-o', out, '--synthetic', '64', '--provider', 'cpu', '--runtime', OLD, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim().split('\n')[0]) as RestoreResult;
    assert.equal(res.error, undefined);
    assert.deepEqual(res.route.runtime, { asked: OLD, build: OLD, reason: 'asked for' });
    assert.deepEqual(
      [res.route.provider, res.route.binding, res.route.detector],
      ['cpu', 'capi', { provider: 'cpu', capi: true }],
    );
    assert.equal(res.faces.length, 1, "the detector on 1.19's C API finds the demo face");
    assert.deepEqual(res.provider.ran, ['cpu']);
    assert.ok(res.outputs.gpen && existsSync(res.outputs.gpen));
    assert.match(r.stderr, /provider cpu -> cpu \(fast route: C API.*; runtime ort1\.19-cuda12\)/);
    assertOnly119(r.mapped);
  });

  it("the CPU by default stays on onnxruntime-node's build, and says so", () => {
    const r = cli(['restore', FACE, '-o', path.join(tmp, 'own'), '--synthetic', '64', '--provider', 'cpu', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim().split('\n')[0]) as RestoreResult;
    assert.deepEqual(
      [res.route.runtime?.asked, res.route.runtime?.build, res.route.binding],
      ['auto', 'ort1.29-cuda13', 'stock'],
    );
    assert.ok(r.mapped?.some((f) => f.endsWith('onnxruntime_binding.node')));
  });

  it('the stock route, WebGPU, a build outside the set: E_ARGUMENT naming --runtime (exit 2); not installed: E_RUNTIME_VERSION with the fix', () => {
    const base = ['restore', FACE, '-o', path.join(tmp, 'refused'), '--synthetic', '64'];
    for (const [extra, re] of [
      [
        ['--runtime', OLD, '--route', 'stock', '--provider', 'cpu'],
        /E_ARGUMENT.*The --runtime ort1\.19-cuda12 has no stock route/s,
      ],
      [['--runtime', OLD, '--provider', 'webgpu'], /E_ARGUMENT.*The --runtime ort1\.19-cuda12 has no webgpu provider/s],
      [
        ['--runtime', 'ort1.18', '--provider', 'cpu'],
        /E_ARGUMENT.*one of ort1\.29-cuda13, ort1\.19-cuda12 for --runtime/s,
      ],
    ] as const) {
      const r = cli([...base, ...extra]);
      assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    const empty = path.join(tmp, 'empty-cache');
    mkdirSync(empty, { recursive: true });
    const r = cli([...base, '--runtime', OLD, '--provider', 'cpu'], { GPEN_LAB_CACHE: empty });
    assert.equal(r.status, 3, r.stderr);
    assert.match(
      r.stderr,
      /E_RUNTIME_VERSION.*ort1\.19-cuda12 is not installed.*fix: Run `gpen-lab setup cuda --runtime ort1\.19-cuda12`/s,
    );
  });
});

describe('model run, bench and serve with --runtime ort1.19-cuda12', () => {
  it('model run: the identity model gives its input back through 1.19.2', async () => {
    const model = path.join(tmp, 'identity-64.onnx');
    assert.equal(cli(['model', 'synth', '--size', '64', '--kind', 'identity', '-o', model]).status, 0);
    const x = path.join(tmp, 'x.npy');
    const y = path.join(tmp, 'y.npy');
    await writeNpy(x, { dtype: 'float32', dims: [1, 3, 64, 64], data: new Float32Array(3 * 64 * 64).fill(0.25) });
    const r = cli([
      'model',
      'run',
      model,
      '--input',
      x,
      '--output',
      y,
      '--provider',
      'cpu',
      '--runtime',
      OLD,
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { route: RestoreResult['route'] };
    assert.deepEqual([res.route.runtime?.build, res.route.binding], [OLD, 'capi']);
    const got = (await readNpy(y)).data as Float32Array;
    assert.ok(got.every((v) => Math.abs(v - 0.25) < 1e-6));
    assertOnly119(r.mapped);
  });

  it('bench: the model-only variant through 1.19.2, the report naming the build', () => {
    const r = cli([
      'bench',
      '--synthetic',
      '64',
      '--provider',
      'cpu',
      '--runtime',
      OLD,
      '--precision',
      'fp32',
      '--batch',
      '1',
      '--runs',
      '2',
      '--warmup',
      '1',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as {
      runtime: string;
      build: string;
      variants: { ok: boolean; ran: string[] | null; error: string | null }[];
    };
    assert.deepEqual([rep.runtime, rep.build], ['1.19.2', OLD]);
    assert.deepEqual(
      rep.variants.map((v) => [v.ok, v.ran, v.error]),
      [[true, ['cpu'], null]],
    );
    assertOnly119(r.mapped);
  });

  it('serve: restores a request and answers /v1/doctor without loading the binding beside 1.19', async () => {
    const maps = path.join(tmp, 'maps-serve.json');
    const args = [
      '--import',
      'tsx',
      'src/cli/index.ts',
      'serve',
      '--synthetic',
      '64',
      '--provider',
      'cpu',
      '--runtime',
      OLD,
      '--port',
      '0',
    ];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 240_000,
      killSignal: 'SIGKILL',
      env: { ...process.env, GPEN_LAB_CACHE: cache, NODE_OPTIONS: `--import=${HOOK}`, GPEN_TEST_MAPS: maps },
    });
    const out = readLines(child.stdout);
    const err = readLines(child.stderr);
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    await out.waitFor(/"event":"ready"/).catch((e: unknown) => assert.fail(`${String(e)}\n${err.text}`));
    const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out.text)?.[1];
    assert.ok(url, out.text);
    const ready = (await (await fetch(`${url}/readyz`)).json()) as { route?: { runtime?: { build: string } } };
    assert.equal(ready.route?.runtime?.build, OLD, JSON.stringify(ready));
    const restored = await fetch(`${url}/v1/restore`, {
      method: 'POST',
      body: new Uint8Array(readFileSync(FACE)),
      headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(restored.status, 200, await restored.clone().text());
    const doctor = await fetch(`${url}/v1/doctor`);
    assert.equal(doctor.status, 200, await doctor.clone().text());
    child.kill('SIGTERM');
    assert.equal(await exited, 0, err.text);
    assertOnly119(JSON.parse(readFileSync(maps, 'utf8')) as string[]);
  });
});

describe('a lab cell with runtime ort1.19-cuda12 on the CPU', () => {
  it('runs in its own processes through 1.19.2 and records the build', async () => {
    const cfg = normalizeConfig(
      {
        inputs: [FACE],
        model: { identity: 64 },
        coldRuns: 1,
        warmRuns: 1,
        timeoutSec: 120,
        cells: [{ provider: 'cpu', runtime: OLD }],
      },
      tmp,
    );
    const res = await runLab(cfg, { out: path.join(tmp, 'lab') });
    const c = res.cells[0];
    assert.equal(c.id, 'cpu-fp32-ort1.19');
    assert.deepEqual(
      [c.stages.startup?.ok, c.stages.dependencies?.ok, c.stages.inference?.ok, c.stages.output?.ok],
      [true, true, true, true],
      JSON.stringify(c.runs),
    );
    assert.equal(c.env.runtime, OLD);
    assert.deepEqual(c.restore?.route.runtime, { asked: OLD, build: OLD, reason: 'asked for' });
    assert.deepEqual(c.provider.knownByBinary, ['cpu', 'cuda', 'tensorrt']);
    assert.match(c.stages.startup?.reason ?? '', /ONNX Runtime 1\.19\.2 \(ort1\.19-cuda12\) loaded through its C API/);
    assert.equal(c.warm.total?.runs, 1);
  });
});
