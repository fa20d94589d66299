// The runtime builds (src/runtime/builds.ts): the closed set and what each supports; ort1.19-cuda12's library fetched
// with npm pack (src/runtime/build-fetch.ts, here from the npm registry into a temporary cache) and, in a child
// process of its own (a process runs one build), the official outputs reproduced through its C API on the CPU, with
// no entry past its table decoded and the omissions listed; the fetch's failures with a stub npm.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { GpenLabError } from '../src/errors.js';
import { convertPth, prepareModel } from '../src/model/registry.js';
import { ensureBuildLibrary } from '../src/runtime/build-fetch.js';
import { CUDA_SETS, fastCudaOptions } from '../src/runtime/routes.js';
import { formForCuda } from '../src/model/registry.js';
import {
  BUILD_SPECS,
  RUNTIME_BUILDS,
  buildLibraryPath,
  buildSpec,
  checkBuildCombination,
  parseRuntimeBuild,
} from '../src/runtime/builds.js';
import { IX, entriesBeyond, load, type ApiName } from '../src/runtime/capi/api.js';
import { PROVIDERS } from '../src/runtime/providers.js';
import { COMBINATIONS, ROUTES, combination } from '../src/runtime/routes.js';
import { fixture, fixtureConfig } from './fixtures.js';
import { useTempCache } from './helpers/cache-dir.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OLD = 'ort1.19-cuda12';
const LIB = BUILD_SPECS[OLD].library;
const tmp = useTempCache('gpen-builds-');
const isCoded = (code: string, re: RegExp) => (e: unknown) =>
  e instanceof GpenLabError && e.code === code && re.test(`${e.message} ${e.fix}`);

/** ort1.19's library, fetched once for the file (npm pack from the registry) into the file's own cache. */
const cache = process.env.GPEN_LAB_CACHE!;
let fetched: Promise<string> | null = null;
const library = () => (fetched ??= ensureBuildLibrary(OLD, { cacheDir: cache }));

describe('runtime builds: the closed set', () => {
  it('names two builds, each with its library, provider package, C API version, needs and supports', () => {
    assert.deepEqual(RUNTIME_BUILDS, ['ort1.29-cuda13', 'ort1.19-cuda12']);
    const s29 = buildSpec('ort1.29-cuda13');
    const s19 = buildSpec(OLD);
    assert.deepEqual(
      [s29.ortVersion, s29.apiVersion, s29.cudaMajor, s29.cudnnMajor, s29.driverMin, s29.providerPackage.version],
      ['1.29.0', 29, 13, 9, 580, '0.4.9'],
    );
    assert.deepEqual(
      [s19.ortVersion, s19.apiVersion, s19.cudaMajor, s19.cudnnMajor, s19.driverMin, s19.providerPackage.version],
      ['1.19.2', 19, 12, 9, 525, '0.2.1'],
    );
    assert.deepEqual(s29.providers, PROVIDERS);
    assert.deepEqual(s29.routes, ROUTES);
    assert.deepEqual(s19.providers, ['cpu', 'cuda', 'tensorrt']);
    assert.deepEqual(s19.routes, ['fast']);
    assert.equal(s29.library.from, 'onnxruntime-node');
    assert.equal(LIB.from, 'npm-pack');
    assert.equal(buildLibraryPath(OLD, '/c'), '/c/runtimes/ort1.19-cuda12/libonnxruntime.so.1.19.2');
    assert.equal(parseRuntimeBuild(OLD), OLD);
    for (const bad of ['ort1.18', 1, undefined])
      assert.throws(
        () => parseRuntimeBuild(bad),
        (e: unknown) => isCoded('E_ARGUMENT', /one of ort1\.29-cuda13, ort1\.19-cuda12 for runtime/)(e),
      );
  });

  it("the table's length: 1.19's ends at index 279, and of the entries used only three lie beyond its C API version", () => {
    const names = Object.keys(IX) as ApiName[];
    const within = names.filter((n) => IX[n][1] <= 19);
    assert.equal(Math.max(...within.map((n) => IX[n][0])) < BUILD_SPECS[OLD].tableEntries, true);
    assert.equal(BUILD_SPECS[OLD].tableEntries, 280);
    assert.deepEqual(entriesBeyond(19), ['GetKeyValuePairs', 'ReleaseKeyValuePairs', 'AllocatorGetStats']);
    assert.deepEqual(entriesBeyond(buildSpec('ort1.29-cuda13').apiVersion), []);
  });

  it('the stock route and WebGPU with ort1.19 are refused with a coded error naming runtime; the rest run on the C API', () => {
    for (const [provider, route, re] of [
      ['cpu', 'stock', /ort1\.19-cuda12 has no stock route.*Use route fast.*ort1\.29-cuda13/],
      ['cuda', 'stock', /no stock route/],
      ['webgpu', 'fast', /ort1\.19-cuda12 has no webgpu provider.*cpu, cuda, tensorrt.*ort1\.29-cuda13/],
    ] as const) {
      assert.throws(
        () => checkBuildCombination(OLD, provider, route),
        (e: unknown) => isCoded('E_ARGUMENT', re)(e) && (e as GpenLabError).details.option === 'runtime',
      );
      assert.throws(() => combination(provider, route, 'fp32', undefined, OLD), isCoded('E_ARGUMENT', re));
    }
    for (const p of ['cpu', 'cuda', 'tensorrt'] as const)
      assert.equal(combination(p, 'fast', 'fp32', undefined, OLD).binding, 'capi');
    // the default build keeps the table as it is
    for (const c of COMBINATIONS) {
      checkBuildCombination('ort1.29-cuda13', c.provider, c.route);
      assert.deepEqual(combination(c.provider, c.route, c.precision), c);
    }
  });

  it("this process runs onnxruntime-node's build, asking C API version 29 with nothing omitted; another build is refused", () => {
    const a = load();
    assert.deepEqual(
      [a.build, a.version, a.apiVersion, a.entries, a.omitted],
      ['ort1.29-cuda13', '1.29.0', 29, 320, []],
    );
    assert.ok(a.fns.AllocatorGetStats && a.fns.GetKeyValuePairs);
    assert.equal(load('ort1.29-cuda13'), a);
    assert.throws(() => load(OLD), isCoded('E_RUNTIME_VERSION', /a process runs one build/));
  });
});

/** Runs `script` (ES module source, imports relative to the repository) in a child process; its stdout's JSON. */
function child(script: string, env: Record<string, string>): unknown {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, ...env },
  });
  assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const CHILD = `
import { readFileSync } from 'node:fs';
import { IX, load } from './src/runtime/capi/api.ts';
import { CapiSession } from './src/runtime/capi/session.ts';
import { readNpy } from './src/io/npy.ts';
const job = JSON.parse(readFileSync(process.env.GPEN_TEST_JOB, 'utf8'));
const a = load('ort1.19-cuda12');
const decoded = Object.keys(a.fns);
const out = { version: a.version, build: a.build, apiVersion: a.apiVersion, entries: a.entries, omitted: a.omitted,
  highest: Math.max(...decoded.map((n) => IX[n][0])), decoded: decoded.length, cases: [] };
const maxAbs = (x, y) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
for (const m of job.models) {
  const s = CapiSession.create(m.file, { provider: 'cpu', runtime: 'ort1.19-cuda12', gpenOps: m.gpenOps });
  const per = 3 * m.size * m.size;
  const ins = await Promise.all(m.cases.map((c) => readNpy(c.input)));
  const refs = await Promise.all(m.cases.map((c) => readNpy(c.output)));
  ins.forEach((t, i) => out.cases.push({ model: m.name, batched: false, err: maxAbs(s.run(t.data, t.dims, per), refs[i].data) }));
  const x = new Float32Array(per * ins.length);
  ins.forEach((t, i) => x.set(t.data, i * per));
  const y = s.run(x, [ins.length, 3, m.size, m.size], x.length);
  refs.forEach((r, i) => out.cases.push({ model: m.name, batched: true, err: maxAbs(y.subarray(i * per, (i + 1) * per), r.data) }));
  out.stats = s.allocatorStats('cpu');
  out.statsOmitted = s.allocatorStatsOmitted;
  s.release();
}
for (const [what, f] of [['truncated', () => CapiSession.create(job.truncated, { provider: 'cpu' })], ['other build', () => load('ort1.29-cuda13')]]) {
  try { f(); out[what] = null; } catch (e) { out[what] = { code: e.code, message: e.message }; }
}
out.mapped = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('libonnxruntime')).map((l) => l.split(/\\s+/).pop()))];
console.log(JSON.stringify(out));
`;

interface ChildReport {
  version: string;
  build: string;
  apiVersion: number;
  entries: number;
  omitted: string[];
  highest: number;
  decoded: number;
  cases: { model: string; batched: boolean; err: number }[];
  stats: unknown;
  statsOmitted: string | null;
  truncated: { code: string; message: string } | null;
  'other build': { code: string; message: string } | null;
  mapped: string[];
}

describe('ort1.19-cuda12 through the C API on the CPU (a child process of its own)', () => {
  it("fetches onnxruntime-node@1.19.2's library with npm pack into the cache, checked", async () => {
    const file = await library();
    assert.equal(file, buildLibraryPath(OLD, cache));
    assert.equal(readFileSync(file).byteLength, LIB.from === 'npm-pack' ? LIB.bytes : 0);
    assert.deepEqual(readdirSync(path.dirname(file)), [LIB.from === 'npm-pack' ? LIB.file : '']);
  });

  it('reproduces the official outputs (max abs <= 1e-4), runs FusedAct, decodes no index past 279, lists the omissions, refuses a truncated model', async () => {
    await library();
    const models = [];
    for (const name of ['gpen-tiny-64', 'gpen-128']) {
      const cfg = fixtureConfig(name);
      const file = path.join(tmp, `${name}.onnx`);
      await convertPth(fixture(`${name}.pth`), file, { precision: 'fp32' });
      const cases = cfg.cases.map((c) => ({ input: fixture(c.input), output: fixture(c.output) }));
      models.push({ name, file, size: cfg.size, cases, gpenOps: false });
      if (name === 'gpen-tiny-64') {
        // gpen-lab's operator (its JavaScript kernel on the CPU) through 1.19's custom-op API
        const p = await prepareModel({ type: 'file', file: fixture(`${name}.pth`) }, 'fp32', {
          nhwc: true,
          fusedAct: true,
        });
        const fused = typeof p.model === 'string' ? p.model : path.join(tmp, `${name}.fused.onnx`);
        if (typeof p.model !== 'string') writeFileSync(fused, p.model);
        models.push({ name: `${name} FusedAct`, file: fused, size: cfg.size, cases, gpenOps: true });
      }
    }
    const truncated = path.join(tmp, 'truncated.onnx');
    const whole = readFileSync(models[0].file);
    writeFileSync(truncated, whole.subarray(0, whole.byteLength >> 1));
    const job = path.join(tmp, 'job.json');
    writeFileSync(job, JSON.stringify({ models, truncated }));
    const r = child(CHILD, { GPEN_LAB_CACHE: cache, GPEN_TEST_JOB: job }) as ChildReport;
    assert.deepEqual([r.version, r.build, r.apiVersion], ['1.19.2', OLD, 19]);
    assert.ok(r.entries <= 280 && r.highest <= 279, `entries ${r.entries}, highest index decoded ${r.highest}`);
    assert.deepEqual(r.omitted, ['GetKeyValuePairs', 'ReleaseKeyValuePairs', 'AllocatorGetStats']);
    assert.equal(r.decoded, Object.keys(IX).length - 3);
    assert.equal(r.cases.length, 3 * 2 * 2);
    for (const c of r.cases) assert.ok(c.err <= 1e-4, `${c.model} (batched ${c.batched}): max abs ${c.err}`);
    assert.equal(r.stats, null);
    assert.match(r.statsOmitted ?? '', /1\.19\.2.*lacks AllocatorGetStats, GetKeyValuePairs, ReleaseKeyValuePairs/);
    assert.equal(r.truncated?.code, 'E_SESSION');
    assert.match(r.truncated?.message ?? '', /CreateSession failed/);
    assert.equal(r['other build']?.code, 'E_RUNTIME_VERSION');
    // the one libonnxruntime in the child's memory is 1.19.2's: onnxruntime-node's binding never loaded
    assert.deepEqual(r.mapped, [buildLibraryPath(OLD, cache)]);
  });
});

describe('a process runs one build', () => {
  it('ort1.19 in a process whose stock binding is loaded: E_RUNTIME_VERSION, before any library is loaded', () => {
    const script = `
import { prepareModel } from './src/model/registry.ts';
import { ModelSession } from './src/runtime/session.ts';
import { load } from './src/runtime/capi/api.ts';
const p = await prepareModel({ type: 'identity', size: 64 }, 'fp32');
await (await ModelSession.create(p.model, { provider: 'cpu', recordPlacement: false })).release();
try { load('ort1.19-cuda12'); console.log('null'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
`;
    const r = child(script, { GPEN_LAB_CACHE: cache }) as { code: string; message: string } | null;
    assert.equal(r?.code, 'E_RUNTIME_VERSION');
    assert.match(r?.message ?? '', /loaded onnxruntime-node's binding \(1\.29\.0\): a process runs one build/);
  });
});

describe("the fast route's CUDA sets per build", () => {
  it('ort1.19-cuda12 has no NHWC kernels: its warm set keeps CUDA graphs and the arena, without NHWC and FusedAct', () => {
    assert.equal(buildSpec('ort1.29-cuda13').nhwc, true);
    assert.equal(buildSpec(OLD).nhwc, false);
    assert.deepEqual(fastCudaOptions('batch', true), { ...CUDA_SETS.warm });
    const old = fastCudaOptions('batch', true, OLD);
    assert.deepEqual(old, {
      enable_cuda_graph: '1',
      arena_extend_strategy: 'kSameAsRequested',
      'arena.max_dead_bytes_per_chunk': '1048576',
    });
    // the graph it takes is the NCHW one, without FusedAct nodes
    assert.deepEqual(formForCuda(old), { nhwc: false, fusedAct: false });
    assert.deepEqual(fastCudaOptions('single', true, OLD), { ...CUDA_SETS.cold });
  });
});

describe('ensureBuildLibrary with a stub npm (no network)', () => {
  let n = 0;
  /** A stub npm: writes `tgz` (when given) to --pack-destination and logs each call; else fails as npm does. */
  function stub(tgz: string | null): { npm: string; calls: () => number; cache: string } {
    const dir = path.join(tmp, `stub-${n++}`);
    mkdirSync(dir);
    const log = path.join(dir, 'calls');
    const npm = path.join(dir, 'npm');
    writeFileSync(
      npm,
      tgz
        ? `#!/bin/sh\necho "$@" >> '${log}'\ncp '${tgz}' "$4/onnxruntime-node-1.19.2.tgz"\necho onnxruntime-node-1.19.2.tgz\n`
        : `#!/bin/sh\necho "$@" >> '${log}'\necho "npm error code ENOTFOUND" >&2\nexit 1\n`,
    );
    chmodSync(npm, 0o755);
    const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').length : 0);
    return { npm, calls, cache: path.join(dir, 'cache') };
  }
  /** An npm tarball holding `bytes` as the library. */
  async function tarball(name: string, bytes: Buffer | string): Promise<string> {
    const root = path.join(tmp, `tgz-${name}`);
    const member = LIB.from === 'npm-pack' ? LIB.member : '';
    mkdirSync(path.join(root, path.dirname(member)), { recursive: true });
    if (typeof bytes === 'string') copyFileSync(bytes, path.join(root, member));
    else writeFileSync(path.join(root, member), bytes);
    const file = path.join(tmp, `${name}.tgz`);
    await tar.c({ gzip: true, file, cwd: root }, ['package']);
    return file;
  }
  const filesUnder = (d: string): string[] =>
    existsSync(d)
      ? readdirSync(d, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => e.name)
      : [];

  it('a failing npm: E_NETWORK naming the command and the registry', async () => {
    const s = stub(null);
    await assert.rejects(
      ensureBuildLibrary(OLD, { cacheDir: s.cache, npm: s.npm }),
      (e: unknown) =>
        isCoded(
          'E_NETWORK',
          /npm pack onnxruntime-node@1\.19\.2 --pack-destination .* failed: npm error code ENOTFOUND/,
        )(e) && /needs the npm registry/.test((e as GpenLabError).fix),
    );
    assert.equal(s.calls(), 1);
    assert.deepEqual(filesUnder(s.cache), []);
    await assert.rejects(
      ensureBuildLibrary(OLD, { cacheDir: s.cache, npm: path.join(tmp, 'no-such-npm') }),
      isCoded('E_NETWORK', /failed: .*ENOENT/),
    );
  });

  it('a tarball whose library has other bytes: E_CHECKSUM, and nothing left in the cache', async () => {
    const s = stub(await tarball('wrong', Buffer.from('not the library')));
    await assert.rejects(
      ensureBuildLibrary(OLD, { cacheDir: s.cache, npm: s.npm }),
      isCoded(
        'E_CHECKSUM',
        /libonnxruntime\.so\.1\.19\.2 of onnxruntime-node-1\.19\.2\.tgz has sha256 [0-9a-f]{64}, not the recorded/,
      ),
    );
    assert.deepEqual(filesUnder(s.cache), []);
    assert.deepEqual(readdirSync(path.join(s.cache, 'runtimes', OLD)), [], 'no temporary folder left');
  });

  it('the recorded library: put in the cache, and a second call runs no npm', async () => {
    const s = stub(await tarball('good', await library()));
    const file = await ensureBuildLibrary(OLD, { cacheDir: s.cache, npm: s.npm });
    assert.equal(file, buildLibraryPath(OLD, s.cache));
    assert.deepEqual(readFileSync(file), readFileSync(await library()));
    assert.equal(s.calls(), 1);
    assert.match(
      readFileSync(path.join(path.dirname(s.npm), 'calls'), 'utf8'),
      /^pack onnxruntime-node@1\.19\.2 --pack-destination /,
    );
    assert.equal(await ensureBuildLibrary(OLD, { cacheDir: s.cache, npm: s.npm }), file);
    assert.equal(s.calls(), 1);
    assert.deepEqual(filesUnder(s.cache), [LIB.from === 'npm-pack' ? LIB.file : '']);
  });

  it('a folder holding the library (setup cuda --from DIR, offline): taken from there, checked, no npm run', async () => {
    const s = stub(null);
    const from = path.join(tmp, 'offline-kit');
    mkdirSync(from, { recursive: true });
    copyFileSync(await library(), path.join(from, LIB.from === 'npm-pack' ? LIB.file : ''));
    const file = await ensureBuildLibrary(OLD, { cacheDir: s.cache, npm: s.npm, from });
    assert.equal(file, buildLibraryPath(OLD, s.cache));
    assert.deepEqual(readFileSync(file), readFileSync(await library()));
    assert.equal(s.calls(), 0);
    // other bytes under the library's name: E_CHECKSUM, nothing in the cache
    const bad = stub(null);
    const wrong = path.join(tmp, 'offline-wrong');
    mkdirSync(wrong, { recursive: true });
    writeFileSync(path.join(wrong, LIB.from === 'npm-pack' ? LIB.file : ''), 'not the library');
    await assert.rejects(
      ensureBuildLibrary(OLD, { cacheDir: bad.cache, npm: bad.npm, from: wrong }),
      isCoded('E_CHECKSUM', /offline-wrong\/libonnxruntime\.so\.1\.19\.2 has sha256 [0-9a-f]{64}, not the recorded/),
    );
    assert.deepEqual(filesUnder(bad.cache), []);
    assert.equal(bad.calls(), 0);
  });

  it("ort1.29's library is onnxruntime-node's own: nothing is fetched", async () => {
    const s = stub(null);
    assert.equal(
      await ensureBuildLibrary('ort1.29-cuda13', { cacheDir: s.cache, npm: s.npm }),
      buildLibraryPath('ort1.29-cuda13'),
    );
    assert.equal(s.calls(), 0);
  });
});
