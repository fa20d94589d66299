// CUDA library sets on LD_LIBRARY_PATH, on stub libraries built with cc answering the versions of Debian's CUDA 12.4
// and 11.8 packages, with a stand-in loader cache holding a system CUDA 13: which CUDA a folder is, a set of another
// CUDA that the build skips (a warning naming what the loader took instead), a set no build runs on (CUDA 11.8: a
// failure with the fix), a set of the build's CUDA lacking one library (which one, and where to get it), and a
// matching set (no finding).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkNeeded } from '../src/doctor/checks.js';
import { addedDirs, describeSet, librarySetFindings } from '../src/doctor/library-set.js';
import { BUILD_REQUIREMENTS } from '../src/doctor/requirements.js';
import type { RuntimeBuild } from '../src/runtime/builds.js';
import { DEBIAN_CUDA_12_4, VERSION_C, buildLib, buildSet, requireCc } from './helpers/native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-libset-'));
const d = (n: string) => path.join(tmp, n);
const cache = new Map<string, string>();

before(() => {
  requireCc();
  // the system's CUDA 13 and cuDNN, reached through the loader cache as on a CUDA 13 image
  const sys: [string, string][] = [
    ['libcudart.so.13', VERSION_C.cudart(13000)],
    ['libcublas.so.13', VERSION_C.cublas(130100)],
    ['libcublasLt.so.13', VERSION_C.cublasLt(130100)],
    ['libcurand.so.10', VERSION_C.curand(10400)],
    ['libcufft.so.12', VERSION_C.cufft(12000)],
    ['libnvrtc.so.13', VERSION_C.nvrtc(130)],
    ['libcuda.so.1', VERSION_C.cuda(13000)],
    ...['', '_graph', '_ops', '_cnn', '_adv', '_engines_precompiled', '_engines_runtime_compiled', '_heuristic'].map(
      (p): [string, string] => [`libcudnn${p}.so.9`, VERSION_C.cudnn(91400)],
    ),
  ];
  for (const [n, body] of sys) cache.set(n, buildLib(d('system'), n, body));
  buildSet(d('cuda-12.4'), DEBIAN_CUDA_12_4);
  buildSet(d('cuda-12.4-no-cufft'), DEBIAN_CUDA_12_4, ['libcufft.so.11']);
  buildLib(d('cuda-11.8'), 'libcudart.so.11.0', VERSION_C.cudart(11080));
});

/** What the build's CUDA provider needs, resolved with `set` ahead of the stand-in system, and the set findings. */
function check(build: RuntimeBuild, set: string) {
  const record = BUILD_REQUIREMENTS[build].cuda.filter((r) => !r.system);
  const libraries = checkNeeded(record, { runpath: [], ldLibraryPath: set, ldCache: cache, memo: new Map() });
  return { libraries, findings: librarySetFindings([describeSet(set)], build, libraries) };
}

describe('library sets', () => {
  it('reads which CUDA a folder is from its libcudart, and lists its libraries with versions', () => {
    const s = describeSet(d('cuda-12.4'));
    assert.equal(s.cuda, '12.4');
    assert.deepEqual(
      s.libraries.map((l) => `${l.soname} ${l.version}`),
      [
        'libcublas.so.12 12.4.5',
        'libcublasLt.so.12 12.4.5',
        'libcudart.so.12 12.4',
        'libcufft.so.11 11.2.1',
        'libcurand.so.10 10.3.5',
        'libnvrtc.so.12 12.4',
      ],
    );
    assert.equal(describeSet(d('cuda-11.8')).cuda, '11.8');
    assert.deepEqual(describeSet(d('absent')), { dir: d('absent'), cuda: null, libraries: [] });
  });

  it('says which folders a cell adds to the lab path', () => {
    assert.deepEqual(addedDirs('/a:/b:/usr/lib', '/usr/lib:/c'), ['/a', '/b']);
    assert.deepEqual(addedDirs(undefined, '/x'), []);
  });

  it('warns that the CUDA 13 build skips a CUDA 12.4 set, naming what the loader took and the build that fits', () => {
    const { libraries, findings } = check('ort1.29-cuda13', d('cuda-12.4'));
    assert.equal(libraries.find((l) => l.soname === 'libcudart.so.13')?.foundVia, 'ld.so.cache');
    assert.equal(findings.length, 1);
    const f = findings[0];
    assert.equal(f.id, 'library-set-unused');
    assert.equal(f.verdict, 'warn');
    assert.match(f.message, /holds CUDA 12\.4 \(libcublas\.so\.12 12\.4\.5, .*libcudart\.so\.12 12\.4/);
    assert.match(f.message, /ort1\.29-cuda13 needs CUDA 13/);
    // cuRAND keeps soname 10 across CUDA 12 and 13: the loader takes the set's, the rest from the system
    assert.match(f.message, /takes only libcurand\.so\.10 10\.3\.5 from it/);
    assert.ok(f.message.includes(`libcudart.so.13 from ${d('system')}/libcudart.so.13 (ld.so.cache)`));
    assert.equal(
      f.fix,
      `run with --runtime ort1.19-cuda12 to use this set, or take ${d('cuda-12.4')} off LD_LIBRARY_PATH`,
    );
  });

  it('fails a CUDA 11.8 set: no build runs on CUDA 11, and the fix names a CUDA 12 set and its Debian package', () => {
    const { findings } = check('ort1.19-cuda12', d('cuda-11.8'));
    assert.equal(findings.length, 1);
    const f = findings[0];
    assert.equal(f.id, 'library-set-no-build');
    assert.equal(f.verdict, 'fail');
    assert.match(f.message, /holds CUDA 11\.8 \(libcudart\.so\.11\.0 11\.8\)/);
    assert.match(
      f.message,
      /ort1\.19-cuda12 needs CUDA 12 \(libcublasLt\.so\.12, libcublas\.so\.12, libcufft\.so\.11, libcudart\.so\.12, libnvrtc\.so\.12\)/,
    );
    assert.match(f.message, /no gpen-lab build runs on CUDA 11/);
    assert.match(f.fix ?? '', /put a CUDA 12 set on LD_LIBRARY_PATH \(.*Debian's libcublaslt12 \(trixie non-free\)\)/);
    assert.match(f.fix ?? '', /ort1\.29-cuda13 \(CUDA 13\)/);
  });

  it('names the one library a CUDA 12.4 set lacks, and where to get it', () => {
    const { libraries, findings } = check('ort1.19-cuda12', d('cuda-12.4-no-cufft'));
    assert.equal(libraries.find((l) => l.soname === 'libcufft.so.11')?.path, null);
    assert.deepEqual(
      findings.map((f) => f.id),
      ['library-set-incomplete'],
    );
    assert.match(
      findings[0].message,
      /holds CUDA 12\.4 .*: it lacks libcufft\.so\.11 \(cuFFT\), which ort1\.19-cuda12 needs/,
    );
    assert.match(
      findings[0].fix ?? '',
      /put libcufft\.so\.11 of CUDA 12 in .*cuda-12\.4-no-cufft.*Debian's libcufft11 \(trixie non-free\)/,
    );
  });

  it('finds nothing to say of a set that serves the build', () => {
    const { libraries, findings } = check('ort1.19-cuda12', d('cuda-12.4'));
    assert.deepEqual(findings, []);
    assert.equal(libraries.find((l) => l.soname === 'libcudart.so.12')?.version, '12.4');
    assert.equal(libraries.find((l) => l.soname === 'libcudnn.so.9')?.foundVia, 'ld.so.cache');
  });
});
