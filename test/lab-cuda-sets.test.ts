// The lab over CUDA library sets: examples/lab-cuda-sets.yaml read with its variables (and refused without them), a
// cell's dependency stage on its own build's report with the sets its LD_LIBRARY_PATH adds (stub CUDA 11.8 and 12.4
// sets built with cc: recorded with their CUDA, the 11.8 one failing with no build for it, the 12.4 one under the CUDA
// 13 build named as the set of the other build), and the summary table drawn from a committed results.json.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import { readConfig } from '../src/lab/config.js';
import { runCell } from '../src/lab/cell.js';
import { quickest, studyRows } from '../src/lab/report-study.js';
import { deriveFlags } from '../src/lab/analyse.js';
import { renderMarkdown } from '../src/lab/report.js';
import type { CellSpec, LabConfig, LabResults } from '../src/lab/types.js';
import { DEBIAN_CUDA_12_4, VERSION_C, buildLib, buildSet, requireCc } from './helpers/native.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-sets-'));
const EXAMPLE = path.resolve('examples/lab-cuda-sets.yaml');

function withEnv<T>(vars: Record<string, string | undefined>, f: () => T): T {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars))
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  try {
    return f();
  } finally {
    for (const [k, v] of Object.entries(old))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

describe('the CUDA-sets lab config', () => {
  it('reads six cells, sets x builds, with the model and library paths from the environment', () => {
    const cfg = withEnv({ GPEN_MODEL: '/w/GPEN-BFR-512.pth', CUDA_SETS: '/sets', TORCH_CUDA_LIBS: '/t' }, () =>
      readConfig(EXAMPLE),
    );
    assert.equal(cfg.model.file, '/w/GPEN-BFR-512.pth');
    assert.equal(cfg.reference, 'cuda13-system');
    assert.deepEqual(
      cfg.cells.map((c) => [
        c.id,
        c.provider,
        c.precision,
        c.runtime ?? 'ort1.29-cuda13',
        c.env?.LD_LIBRARY_PATH ?? '',
      ]),
      [
        ['cuda13-system', 'cuda', 'fp16', 'ort1.29-cuda13', ''],
        ['cuda13-torch', 'cuda', 'fp16', 'ort1.29-cuda13', '$TORCH_CUDA_LIBS:$LD_LIBRARY_PATH'],
        ['cuda12.4-ort1.19', 'cuda', 'fp16', 'ort1.19-cuda12', '$CUDA_SETS/12.4:$LD_LIBRARY_PATH'],
        ['cuda11.8-ort1.19', 'cuda', 'fp16', 'ort1.19-cuda12', '$CUDA_SETS/11.8:$LD_LIBRARY_PATH'],
        ['cuda12.4-ort1.29', 'cuda', 'fp16', 'ort1.29-cuda13', '$CUDA_SETS/12.4:$LD_LIBRARY_PATH'],
        ['cuda12.4-no-cufft', 'cuda', 'fp16', 'ort1.19-cuda12', '$CUDA_SETS/12.4-no-cufft:$LD_LIBRARY_PATH'],
      ],
    );
  });

  it('a path naming an unset variable is E_CONFIG naming it', () => {
    assert.throws(
      () => withEnv({ GPEN_MODEL: undefined }, () => readConfig(EXAMPLE)),
      (e: unknown) =>
        e instanceof GpenLabError &&
        e.code === 'E_CONFIG' &&
        /the path "\$GPEN_MODEL" names \$GPEN_MODEL, which is not set/.test(e.message) &&
        /Set GPEN_MODEL/.test(e.fix),
    );
  });
});

describe('a cell on a library set', () => {
  before(() => {
    requireCc();
    buildLib(path.join(tmp, '11.8'), 'libcudart.so.11.0', VERSION_C.cudart(11080));
    buildSet(path.join(tmp, '12.4'), DEBIAN_CUDA_12_4);
  });

  const cfg = (cells: CellSpec[]): LabConfig => ({
    inputs: [path.resolve('assets/demo-face.png')],
    model: { identity: 64 },
    coldRuns: 1,
    warmRuns: 0,
    timeoutSec: 120,
    cells,
  });
  const cell = (id: string, set: string, runtime?: CellSpec['runtime']): CellSpec => ({
    id,
    provider: 'cuda',
    route: 'fast',
    precision: 'fp16',
    ...(runtime ? { runtime } : {}),
    env: { LD_LIBRARY_PATH: `${path.join(tmp, set)}:$LD_LIBRARY_PATH` },
  });

  it('records a CUDA 11.8 set, and fails its dependencies: no build runs on CUDA 11', async () => {
    const c = cell('cuda11.8', '11.8', 'ort1.19-cuda12');
    const r = await runCell(c, cfg([c]), path.join(tmp, 'lab-118'), 'no GPU here', () => undefined);
    assert.deepEqual(
      r.doctor?.sets?.map((s) => [s.dir, s.cuda, s.libraries.map((l) => l.soname)]),
      [[path.join(tmp, '11.8'), '11.8', ['libcudart.so.11.0']]],
    );
    const f = r.doctor!.findings.find((x) => x.id === 'library-set-no-build');
    assert.ok(f, `findings: ${r.doctor!.findings.map((x) => x.id).join(', ')}`);
    assert.equal(f.verdict, 'fail');
    assert.match(f.message, /holds CUDA 11\.8 .*ort1\.19-cuda12 needs CUDA 12 .*no gpen-lab build runs on CUDA 11/);
    assert.equal(r.stages.dependencies?.ok, false);
    assert.equal(
      r.doctor!.libraries.find((l) => l.soname === 'libcudart.so.12')?.path,
      null,
      "the build's own libraries are the ones checked",
    );
  });

  it('a CUDA 12.4 set under the CUDA 13 build: the set is named as the other build’s', async () => {
    const c = cell('cuda12.4-ort1.29', '12.4');
    const r = await runCell(c, cfg([c]), path.join(tmp, 'lab-124'), 'no GPU here', () => undefined);
    assert.equal(r.doctor?.sets?.[0].cuda, '12.4');
    const f = r.doctor!.findings.find((x) => x.id.startsWith('library-set-'));
    assert.ok(f, `findings: ${r.doctor!.findings.map((x) => x.id).join(', ')}`);
    assert.match(f.message, /holds CUDA 12\.4 .*ort1\.29-cuda13 needs CUDA 13/);
    assert.match(f.fix ?? '', /--runtime ort1\.19-cuda12/);
    assert.ok(r.doctor!.libraries.some((l) => l.soname === 'libcudart.so.13'));
  });
});

describe('the summary table', () => {
  const res = JSON.parse(readFileSync('results/device/lab-h100-2026-12-07/results.json', 'utf8')) as LabResults;

  it("has the study's rows, one column per cell, and recommends the fastest comparable first image", () => {
    const rows = studyRows(res);
    assert.deepEqual(
      rows.map(([n]) => n.split(' (')[0].split(',')[0]),
      [
        'start-up',
        'dependency loading',
        'full restoration to a PNG',
        'first image',
        'output agreement',
        'recommendation',
      ],
    );
    const col = (id: string) => rows.map(([, v]) => v[res.cells.findIndex((c) => c.id === id)]);
    const fast = col('cuda-fast-fp16');
    assert.match(
      fast[1],
      /^pass: CUDA 13\.0 \(libcudart\.so\.13, \/usr\/local\/cuda-13\.0\/targets\/x86_64-linux\/lib\)$/,
    );
    assert.equal(fast[2], 'pass (29 faces, decoded back)');
    assert.match(fast[3], /^1\.93 s \(1\.86 s … 2\.13 s, 3 runs\); GPU 4% \/ 64%$/);
    assert.match(fast[4], /^57\.58 dB \/ 0\.9999; \|Δ\| 0\.001 dB: visually lossless$/);
    assert.equal(fast[5], 'recommended: the fastest first image');
    assert.match(col('cuda-stock-fp32')[5], /^works \(first image 1\.58x cuda-fast-fp16's\)$/);
    assert.equal(col('cuda-stock-fp32')[4], 'reference');
    assert.match(col('cpu-fp32')[5], /restores other inputs \(demo-face\.png\), so not compared/);
    const trt = col('tensorrt-fp16');
    assert.match(trt[1], /^FAIL: libnvinfer\.so\.10/);
    assert.equal(trt[3], '—');
    assert.match(trt[5], /^do not use; fix: install TensorRT 10 for CUDA 13/);
  });

  it('report.md opens with it, before the table of every dimension', () => {
    const md = renderMarkdown(res);
    assert.ok(md.indexOf('## At a glance') > 0 && md.indexOf('## At a glance') < md.indexOf('## Every dimension'));
    assert.match(md, /\| recommendation \| works; restores other inputs/);
  });
});

describe('the CUDA-sets study on the H100 (results/device/lab-cuda-2026-12-07)', () => {
  const res = JSON.parse(readFileSync('results/device/lab-cuda-2026-12-07/results.json', 'utf8')) as LabResults;
  deriveFlags(res);
  const cell = (id: string) => res.cells.find((c) => c.id === id)!;

  it('passing cells agree with each other >= 45 dB, and each library set is the one its cell resolved', () => {
    const passing = ['cuda13-system', 'cuda13-torch', 'cuda12.4-ort1.19', 'cuda12.4-ort1.29'];
    for (let i = 0; i < passing.length; i++)
      for (const b of passing.slice(i + 1)) {
        const p = res.pairs.find((x) => (x.a === passing[i] && x.b === b) || (x.a === b && x.b === passing[i]));
        assert.ok(p && p.psnr >= 45, `${passing[i]} vs ${b}: ${p?.psnr}`);
      }
    const rt = (id: string) => cell(id).doctor!.libraries.find((l) => l.soname.startsWith('libcudart.so.'))!;
    assert.match(rt('cuda13-torch').path!, /site-packages\/nvidia\/cu13\/lib/);
    assert.deepEqual(
      [rt('cuda12.4-ort1.19').path, rt('cuda12.4-ort1.19').version],
      ['/tmp/cuda-sets/12.4/libcudart.so.12.4.127', '12.4'],
    );
  });

  it('the findings: no build for CUDA 11.8, the missing cuFFT, the CUDA 13 build skipping the 12.4 set', () => {
    assert.match(
      cell('cuda11.8-ort1.19').stages.dependencies!.reason!,
      /holds CUDA 11\.8 .*no gpen-lab build runs on CUDA 11/,
    );
    assert.match(cell('cuda12.4-no-cufft').stages.dependencies!.reason!, /it lacks libcufft\.so\.11 \(cuFFT\)/);
    assert.ok(
      cell('cuda12.4-ort1.29').flags.some((f) =>
        /^the library set is not the build's CUDA: .*takes only libcurand\.so\.10 10\.3\.5 from it/.test(f),
      ),
    );
  });

  it('read again: the CUDA 12 build’s warm session refused NHWC (a later run failing is flagged), compared first image to first image', () => {
    const c = cell('cuda12.4-ort1.19');
    assert.ok(
      c.flags.some((f) => /^run 3 failed at warm: .*This build does not support NHWC layout/.test(f)),
      c.flags.join('\n'),
    );
    const slow = c.flags.find((f) => f.startsWith('runs but slow'));
    assert.match(slow ?? '', /^runs but slow: 37% slower than cuda12\.4-ort1\.29 \(first image\)/);
    assert.equal(quickest(res)?.id, 'cuda13-torch', 'flagged cells are not recommended');
  });
});
