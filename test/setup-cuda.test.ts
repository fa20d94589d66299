// setup cuda with small stand-in files (the real ones are 230 MB): install from a tarball and from a folder, the
// checksum check (all or nothing), idempotence, --remove, --no-tensorrt, the runtime version check, bad sources.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { GpenLabError } from '../src/errors.js';
import type { ProviderFile, SetupOptions } from '../src/doctor/setup-cuda.js';
import { PACKAGE_LIB_DIR, PROVIDER_FILES, setupCuda as setup } from '../src/doctor/setup-cuda.js';
import { useTempCache } from './helpers/cache-dir.js';

// No driver answers (the default build, whatever this machine's GPU), and a cache of the file's own: --remove looks
// at every build's folder there.
useTempCache('gpen-setup-cache-');
const setupCuda = (o: SetupOptions) =>
  setup({ gpu: { source: 'none', tried: [], driverVersion: null, cudaDriverVersion: null, devices: [] }, ...o });

let tmp: string;
let files: ProviderFile[];
let pkgDir: string;
let tgz: string;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-setup-'));
  pkgDir = path.join(tmp, 'pkg');
  const libDir = path.join(pkgDir, 'package', PACKAGE_LIB_DIR);
  mkdirSync(libDir, { recursive: true });
  files = PROVIDER_FILES.map((f, i) => {
    const body = Buffer.from(`stand-in for ${f.name} #${i}\n`);
    writeFileSync(path.join(libDir, f.name), body);
    return { ...f, sha256: sha(body), bytes: body.length };
  });
  writeFileSync(path.join(pkgDir, 'package', 'package.json'), '{"name":"stand-in"}');
  tgz = path.join(tmp, 'pkg.tgz');
  await tar.c({ gzip: true, file: tgz, cwd: pkgDir }, ['package']);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function binDir(name: string): string {
  const d = path.join(tmp, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, 'libonnxruntime.so.1'), 'runtime');
  return d;
}

const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof GpenLabError && e.code === code && (!re || re.test(e.message)) && e.fix.length > 0;

describe('setup cuda', () => {
  it('records the three provider files of the pinned package with their sums', () => {
    assert.deepEqual(
      PROVIDER_FILES.map((f) => f.name),
      [
        'libonnxruntime_providers_shared.so',
        'libonnxruntime_providers_cuda.so',
        'libonnxruntime_providers_tensorrt.so',
      ],
    );
    for (const f of PROVIDER_FILES) assert.match(f.sha256, /^[0-9a-f]{64}$/);
  });

  it('installs from the npm tarball next to libonnxruntime.so.1, then does nothing the second time', async () => {
    const dir = binDir('bin-tgz');
    const lines: string[] = [];
    const r = await setupCuda({ from: tgz, binDir: dir, files, runtimeVersion: '1.29.0', log: (l) => lines.push(l) });
    assert.deepEqual(
      r.actions.map((a) => a.action),
      ['installed', 'installed', 'installed'],
    );
    assert.deepEqual(readdirSync(dir).sort(), ['libonnxruntime.so.1', ...files.map((f) => f.name)].sort());
    assert.ok(lines.some((l) => l.startsWith('installed:')));
    const again = await setupCuda({
      from: path.join(tmp, 'does-not-matter'),
      binDir: dir,
      files,
      runtimeVersion: '1.29.0',
    });
    assert.deepEqual(
      again.actions.map((a) => a.action),
      ['already-installed', 'already-installed', 'already-installed'],
      'idempotent, and no source needed',
    );
  });

  it('installs from a folder (as is or with the package layout) and leaves TensorRT out on request', async () => {
    const dir = binDir('bin-dir');
    const r = await setupCuda({ from: pkgDir, binDir: dir, files, runtimeVersion: '1.29.0', tensorrt: false });
    assert.deepEqual(
      r.actions.map((a) => a.file),
      ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
    );
    assert.equal(existsSync(path.join(dir, 'libonnxruntime_providers_tensorrt.so')), false);
  });

  it('replaces a damaged file, and --remove takes every provider file away', async () => {
    const dir = binDir('bin-damaged');
    writeFileSync(path.join(dir, 'libonnxruntime_providers_cuda.so'), 'half a file');
    const r = await setupCuda({ from: tgz, binDir: dir, files, runtimeVersion: '1.29.0' });
    assert.equal(r.actions.find((a) => a.file === 'libonnxruntime_providers_cuda.so')!.action, 'replaced');
    const rm = await setupCuda({ remove: true, binDir: dir, files });
    assert.deepEqual(
      rm.actions.map((a) => a.action),
      ['removed', 'removed', 'removed'],
    );
    assert.deepEqual(readdirSync(dir), ['libonnxruntime.so.1']);
    assert.deepEqual(
      (await setupCuda({ remove: true, binDir: dir, files })).actions.map((a) => a.action),
      ['absent', 'absent', 'absent'],
    );
  });

  it('refuses files whose sum differs from the record, installing none of them', async () => {
    const dir = binDir('bin-bad-sum');
    const wrong = files.map((f, i) => (i === 2 ? { ...f, sha256: '0'.repeat(64) } : f));
    await assert.rejects(
      setupCuda({ from: tgz, binDir: dir, files: wrong, runtimeVersion: '1.29.0' }),
      isCode('E_CHECKSUM', /libonnxruntime_providers_tensorrt\.so/),
    );
    assert.deepEqual(readdirSync(dir), ['libonnxruntime.so.1'], 'all or nothing, no temporary file left');
  });

  it('refuses another onnxruntime-node version, naming both', async () => {
    await assert.rejects(
      setupCuda({ from: tgz, binDir: binDir('bin-ver'), files, runtimeVersion: '1.30.0' }),
      isCode('E_RUNTIME_VERSION', /1\.30\.0.*1\.29\.0/),
    );
  });

  it('bad sources are coded errors: missing, a folder without the files, a file that is not a tarball', async () => {
    const dir = binDir('bin-src');
    await assert.rejects(
      setupCuda({ from: path.join(tmp, 'nope.tgz'), binDir: dir, files, runtimeVersion: '1.29.0' }),
      isCode('E_SETUP_SOURCE', /nope\.tgz/),
    );
    mkdirSync(path.join(tmp, 'empty'));
    await assert.rejects(
      setupCuda({ from: path.join(tmp, 'empty'), binDir: dir, files, runtimeVersion: '1.29.0' }),
      isCode('E_SETUP_SOURCE', /libonnxruntime_providers_cuda\.so/),
    );
    writeFileSync(path.join(tmp, 'text.tgz'), 'not a tarball');
    await assert.rejects(
      setupCuda({ from: path.join(tmp, 'text.tgz'), binDir: dir, files, runtimeVersion: '1.29.0' }),
      isCode('E_SETUP_SOURCE'),
    );
    assert.deepEqual(readdirSync(dir), ['libonnxruntime.so.1']);
  });

  it('needs libonnxruntime.so.1 in the target folder', async () => {
    const d = path.join(tmp, 'no-runtime');
    mkdirSync(d);
    await assert.rejects(
      setupCuda({ from: tgz, binDir: d, files, runtimeVersion: '1.29.0' }),
      isCode('E_FILE_MISSING', /libonnxruntime\.so\.1/),
    );
  });
});
