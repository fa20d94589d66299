// The lab: configs (schema, YAML, matrix, every bad case a coded error), and real labs in fresh processes on the
// identity model (fast): a cell that segfaults, one that hangs past its timeout, one whose provider cannot load, and a
// lab killed with SIGKILL mid-run then resumed without losing or re-running a completed cell.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError } from '../src/errors.js';
import type { RestoreResult } from '../src/face/restore.js';
import { SCHEMA_FILE, defaultConfig, normalizeConfig, readConfig } from '../src/lab/config.js';
import { rootCause } from '../src/lab/causes.js';
import { renderHtml, renderMarkdown } from '../src/lab/report.js';
import { analyse, expandVars, runLab } from '../src/lab/runner.js';
import type { CellResult, CellSpec, LabConfig, LabResults } from '../src/lab/types.js';
import { emptyCell } from '../src/lab/cell.js';
import { timingStats } from '../src/metrics/stats.js';
import { readLines } from './helpers/signals.js';
import { ROUTES } from '../src/runtime/routes.js';
import type { Route, RouteChoice } from '../src/runtime/routes.js';

const FACE = path.resolve('assets/demo-face.png');
let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const configError = (f: () => unknown, re: RegExp) =>
  assert.throws(
    f,
    (e: unknown) =>
      e instanceof GpenLabError && e.code === 'E_CONFIG' && re.test(e.message) && /schema|cell|syntax|id/i.test(e.fix),
  );

describe('lab configs', () => {
  it('the published schema is JSON Schema, and the defaults, the matrix and relative paths are applied', () => {
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as { $schema: string };
    assert.match(schema.$schema, /json-schema\.org/);
    const cfg = normalizeConfig(
      {
        inputs: ['photos/a.png'],
        model: { synthetic: 256 },
        matrix: {
          provider: ['cpu', 'cuda'],
          precision: ['fp32', 'fp16'],
          env: [
            { name: 'sys', vars: {} },
            { name: 'cu12', vars: { LD_LIBRARY_PATH: '/opt/cu12/lib:$LD_LIBRARY_PATH' } },
          ],
        },
        cells: [{ provider: 'webgpu', id: 'wg' }],
      },
      '/base',
    );
    assert.deepEqual(
      cfg.cells.map((c) => c.id),
      [
        'wg',
        'cpu-fp32-sys',
        'cpu-fp32-cu12',
        'cpu-fp16-sys',
        'cpu-fp16-cu12',
        'cuda-fast-fp32-sys',
        'cuda-fast-fp32-cu12',
        'cuda-fast-fp16-sys',
        'cuda-fast-fp16-cu12',
      ],
    );
    assert.deepEqual(
      cfg.cells.map((c) => c.route),
      Array(9).fill('fast'),
      'the route defaults to fast',
    );
    assert.deepEqual([cfg.inputs, cfg.coldRuns, cfg.warmRuns, cfg.timeoutSec], [['/base/photos/a.png'], 3, 5, 300]);
    assert.equal(cfg.cells[2].env?.LD_LIBRARY_PATH, '/opt/cu12/lib:$LD_LIBRARY_PATH');
    assert.deepEqual(
      expandVars(
        { LD_LIBRARY_PATH: '/opt/cu12/lib:$LD_LIBRARY_PATH', X: '${HOME2}/y' },
        { LD_LIBRARY_PATH: '/a', HOME2: '/h' },
      ),
      { LD_LIBRARY_PATH: '/opt/cu12/lib:/a', X: '/h/y' },
    );
    assert.deepEqual(
      expandVars({ LD_LIBRARY_PATH: '/opt/x:$LD_LIBRARY_PATH' }, {}),
      { LD_LIBRARY_PATH: '/opt/x' },
      'an unset variable leaves no empty entry',
    );
  });

  it('reads YAML and JSON files', () => {
    const y = path.join(tmp, 'lab.yaml');
    writeFileSync(
      y,
      'inputs: [face.png]\nmodel: {identity: 64}\ncoldRuns: 1\ncells:\n  - provider: cpu\n    session: {intraOpNumThreads: 1}\n',
    );
    const cfg = readConfig(y);
    assert.deepEqual(
      [cfg.inputs[0], cfg.coldRuns, cfg.cells[0].id, cfg.cells[0].session],
      [path.join(tmp, 'face.png'), 1, 'cpu-fp32', { intraOpNumThreads: 1 }],
    );
  });

  it('every bad config is E_CONFIG naming what is wrong', () => {
    const base = { inputs: ['a.png'], model: { identity: 64 }, cells: [{ provider: 'cpu' as const }] };
    configError(
      () => normalizeConfig({ ...base, colds: 3 } as never, '/'),
      /must NOT have additional properties: colds/,
    );
    configError(
      () => normalizeConfig({ ...base, cells: [{ provider: 'dml' }] } as never, '/'),
      /provider must be equal to one of the allowed values \(cpu, cuda, tensorrt, webgpu\)/,
    );
    configError(() => normalizeConfig({ ...base, model: {} } as never, '/'), /model/);
    configError(() => normalizeConfig({ inputs: ['a.png'], model: { identity: 64 } } as never, '/'), /cells|matrix/);
    configError(
      () => normalizeConfig({ ...base, cells: [{ provider: 'cpu' }, { provider: 'cpu' }] }, '/'),
      /two cells with the id "cpu-fp32"/,
    );
    configError(() => normalizeConfig({ ...base, reference: 'gpu' }, '/'), /reference "gpu" is not a cell/);
    const bad = path.join(tmp, 'bad.yaml');
    writeFileSync(bad, 'inputs: [a\nmodel: {');
    configError(() => readConfig(bad), /is not valid YAML/);
    assert.throws(
      () => readConfig(path.join(tmp, 'none.json')),
      (e: unknown) => e instanceof GpenLabError && e.code === 'E_FILE_MISSING',
    );
  });

  it('a route axis expands into ids that name the route only where it changes the binding', () => {
    const cfg = normalizeConfig(
      {
        inputs: ['a.png'],
        model: { identity: 64 },
        matrix: {
          provider: ['cuda', 'cpu', 'webgpu'],
          route: ['fast', 'stock'],
          precision: ['fp16', 'fp32'],
          env: [{ name: 'sys', vars: {} }],
        },
        cells: [
          { provider: 'cuda', route: 'stock' },
          { provider: 'tensorrt', precision: 'fp16' },
          { provider: 'cuda' },
        ],
      },
      '/',
    );
    assert.deepEqual(
      cfg.cells.map((c) => c.id),
      [
        'cuda-stock-fp32',
        'tensorrt-fp16',
        'cuda-fast-fp32',
        'cuda-fast-fp16-sys',
        'cuda-fast-fp32-sys',
        'cuda-stock-fp16-sys',
        'cuda-stock-fp32-sys',
        'cpu-fp16-sys',
        'cpu-fp32-sys',
        'cpu-stock-fp16-sys',
        'cpu-stock-fp32-sys',
        'webgpu-fp16-sys',
        'webgpu-fp32-sys',
        'webgpu-stock-fp16-sys',
        'webgpu-stock-fp32-sys',
      ],
    );
    assert.deepEqual(
      cfg.cells.slice(0, 7).map((c) => `${c.provider}/${c.route}/${c.precision}`),
      [
        'cuda/stock/fp32',
        'tensorrt/fast/fp16',
        'cuda/fast/fp32',
        'cuda/fast/fp16',
        'cuda/fast/fp32',
        'cuda/stock/fp16',
        'cuda/stock/fp32',
      ],
    );
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as { definitions: { route: { enum: string[] } } };
    assert.deepEqual(schema.definitions.route.enum, [...ROUTES], "the schema's routes are runtime/routes.ts's");
    configError(
      () => normalizeConfig({ inputs: ['a.png'], model: { identity: 64 }, matrix: { route: ['slow'] } } as never, '/'),
      /route\/0 must be equal to one of the allowed values \(fast, stock\)/,
    );
  });

  it('a cell outside the table of routes is refused at load, naming the cell and what is valid', () => {
    const base = { inputs: ['a.png'], model: { identity: 64 } };
    const refused = (input: Parameters<typeof normalizeConfig>[0], message: string, fix: string) =>
      assert.throws(
        () => normalizeConfig(input, '/', 'lab.json'),
        (e: unknown) => {
          assert.ok(e instanceof GpenLabError);
          assert.deepEqual([e.code, e.message, e.fix], ['E_CONFIG', message, fix]);
          return true;
        },
      );
    refused(
      {
        ...base,
        cells: [
          {
            provider: 'cuda',
            route: 'stock',
            id: 'tuned',
            session: { cudaOptions: { cudnn_conv_algo_search: 'HEURISTIC' } },
          },
        ],
      },
      'lab.json: cell "tuned" (provider cuda, route stock, fp32, session.cudaOptions) is not a valid combination: session.cudaOptions cannot be passed on the stock route: onnxruntime-node\'s binding passes only deviceId to the CUDA provider',
      'Change the cell: provider cuda takes route fast with fp32, route fast with fp16, route stock with fp32, route stock with fp16; session.cudaOptions only with provider cuda on route fast (runtime/routes.ts).',
    );
    // the same through a matrix: the first cell it makes that cannot run is named
    refused(
      {
        ...base,
        matrix: { provider: ['cpu', 'cuda'], precision: ['fp16'], session: { cudaOptions: { prefer_nhwc: '1' } } },
      },
      'lab.json: cell "cpu-fp16" (provider cpu, route fast, fp16, session.cudaOptions) is not a valid combination: session.cudaOptions were given but the provider is cpu',
      'Change the cell: provider cpu takes route fast with fp32, route fast with fp16, route stock with fp32, route stock with fp16; session.cudaOptions only with provider cuda on route fast (runtime/routes.ts).',
    );
    // cudaOptions on the fast route of cuda is the expert override, and an empty set is none
    assert.deepEqual(
      normalizeConfig(
        {
          ...base,
          cells: [
            { provider: 'cuda', session: { cudaOptions: { prefer_nhwc: '1' } } },
            { provider: 'cuda', route: 'stock', session: { cudaOptions: {} } },
          ],
        },
        '/',
      ).cells.map((c) => c.id),
      ['cuda-fast-fp32', 'cuda-stock-fp32'],
    );
  });

  it("the default lab on a GPU machine: each installed GPU provider's fast route in fp16 and fp32 against its stock baseline, and cpu fp32", () => {
    const cfg = defaultConfig('/f.png', '/p.png', {
      knownByBinary: ['cpu', 'cuda', 'tensorrt', 'webgpu'],
      installed: ['cuda', 'tensorrt'],
      gpu: true,
    });
    assert.deepEqual(
      cfg.cells.map((c) => c.id),
      [
        'cpu-fp32',
        'cuda-fast-fp16',
        'cuda-fast-fp32',
        'cuda-stock-fp32',
        'tensorrt-fp16',
        'tensorrt-fp32',
        'webgpu-fp16',
        'webgpu-fp32',
      ],
    );
    assert.deepEqual(
      cfg.cells.map((c) => `${c.provider}/${c.route}/${c.precision}`),
      [
        'cpu/fast/fp32',
        'cuda/fast/fp16',
        'cuda/fast/fp32',
        'cuda/stock/fp32',
        'tensorrt/fast/fp16',
        'tensorrt/fast/fp32',
        'webgpu/fast/fp16',
        'webgpu/fast/fp32',
      ],
    );
    assert.deepEqual(
      [cfg.model, cfg.inputs, cfg.gpuInputs, cfg.reference, cfg.coldRuns, cfg.warmRuns],
      [{ synthetic: 512, seed: 0 }, ['/f.png'], ['/p.png'], 'cuda-stock-fp32', 3, 5],
    );
    // what a config file would say is what the default lab is: it passes the same checks
    assert.deepEqual(normalizeConfig({ ...cfg, cells: cfg.cells }, '/').cells, cfg.cells);
    // without cuda installed the reference is the CPU, and a provider not installed keeps one cell for its diagnosis
    const noCuda = defaultConfig('/f.png', '/p.png', {
      knownByBinary: ['cpu', 'cuda', 'tensorrt', 'webgpu'],
      installed: [],
      gpu: true,
    });
    assert.deepEqual(
      [noCuda.cells.map((c) => c.id), noCuda.reference],
      [['cpu-fp32', 'cuda-fast-fp16', 'tensorrt-fp16', 'webgpu-fp16', 'webgpu-fp32'], 'cpu-fp32'],
    );
  });

  it('the default lab without a GPU: cpu fp32 (the reference) and fp16, and one cheap fp16 cell per GPU provider for its diagnosis', () => {
    const noGpu = defaultConfig('/f.png', '/p.png', {
      knownByBinary: ['cpu', 'cuda', 'tensorrt', 'webgpu'],
      installed: ['cuda', 'tensorrt'],
      gpu: false,
    });
    assert.deepEqual(
      [noGpu.cells.map((c) => c.id), noGpu.reference],
      [['cpu-fp32', 'cpu-fp16', 'cuda-fast-fp16', 'tensorrt-fp16', 'webgpu-fp16'], 'cpu-fp32'],
    );
    const nothing = defaultConfig('/f.png', '/p.png', {
      knownByBinary: ['cpu', 'cuda', 'tensorrt'],
      installed: [],
      gpu: true,
    });
    assert.deepEqual(
      [nothing.cells.map((c) => c.id), nothing.reference, nothing.inputs, nothing.gpuInputs],
      [['cpu-fp32', 'cpu-fp16', 'cuda-fast-fp16', 'tensorrt-fp16'], 'cpu-fp32', ['/f.png'], ['/p.png']],
    );
  });
});

describe('recommendations', () => {
  const stats = (ms: number) => timingStats([ms]);
  const cell = (
    spec: CellSpec,
    warmMs: number,
    coldMs: number,
    opts: { passed?: boolean; choice?: Partial<RouteChoice>; inputs?: string[]; warmRoute?: Partial<RouteChoice> } = {},
  ): CellResult => {
    const blank = emptyCell(spec, { inputs: ['/p.png'] } as LabConfig);
    return {
      ...blank,
      status: 'done',
      env: {
        provider: spec.provider,
        precision: spec.precision,
        session: {},
        vars: {},
        launcher: 'local',
        inputs: opts.inputs ?? ['/p.png'],
      },
      ...(opts.warmRoute ? { warmRoute: opts.warmRoute as RouteChoice } : {}),
      stages: {
        startup: { ok: true, reason: '' },
        dependencies: { ok: true, reason: '' },
        inference: { ok: opts.passed !== false, reason: '' },
        output: opts.passed === false ? null : { ok: true, reason: '' },
      },
      provider: { asked: spec.provider, ran: [spec.provider], knownByBinary: null },
      runs:
        opts.passed === false
          ? [
              {
                run: 0,
                ok: false,
                stage: 'inference',
                exitCode: 3,
                signal: null,
                timedOut: false,
                error: 'E_SESSION: no',
                stderrTail: '',
                stages_ms: {},
                total_ms: null,
                maxRssMiB: null,
              },
            ]
          : [],
      cold: { total: opts.passed === false ? null : stats(coldMs), stages: {} },
      warm: { total: opts.passed === false ? null : stats(warmMs), stages: {} },
      gpu: { ...blank.gpu, reason: 'test' },
      restore: opts.choice
        ? ({
            input: '/p.png',
            outputs: { gpen: null, comp: null, faces: [] },
            route: { provider: spec.provider, route: spec.route, precision: spec.precision, ...opts.choice },
          } as unknown as RestoreResult)
        : null,
    };
  };
  const spec = (
    provider: CellSpec['provider'],
    route: Route,
    precision: CellSpec['precision'],
    id: string,
  ): CellSpec => ({ id, provider, route, precision });
  const specs = [
    spec('cpu', 'fast', 'fp32', 'cpu-fp32'),
    spec('cuda', 'fast', 'fp16', 'cuda-fast-fp16'),
    spec('cuda', 'fast', 'fp32', 'cuda-fast-fp32'),
    spec('cuda', 'stock', 'fp32', 'cuda-stock-fp32'),
  ];
  const results = (cells: CellResult[], more: CellSpec[] = []): LabResults => ({
    schema: 'gpen-lab.results/1',
    startedAt: '',
    finishedAt: null,
    machine: {},
    reference: null,
    pairs: [],
    recommendations: [],
    cells,
    config: {
      inputs: ['/f.png'],
      gpuInputs: ['/p.png'],
      model: { synthetic: 512 },
      coldRuns: 1,
      warmRuns: 1,
      timeoutSec: 1,
      reference: 'cuda-stock-fp32',
      cells: [...specs, ...more],
    },
  });

  it('names the fastest passing cell with its route and binding, and how much faster it is than the stock baseline', async () => {
    const res = results([
      cell(specs[0], 4000, 6000, { choice: { binding: 'stock', set: null } }),
      cell(specs[1], 152, 1210, { choice: { binding: 'capi', set: 'warm' } }),
      cell(specs[2], 300, 1500, { choice: { binding: 'capi', set: 'warm' } }),
      cell(specs[3], 927.2, 2500, { choice: { binding: 'stock', set: null } }),
    ]);
    await analyse(res, path.join(tmp, 'rec'));
    assert.equal(res.reference, 'cuda-stock-fp32');
    assert.equal(
      res.recommendations[0],
      'Fastest cell that passes everything: cuda-fast-fp16 (cuda fast fp16, C API warm set, median 0.152 s per image warm, 1.21 s cold; 6.1x the stock baseline cuda-stock-fp32).',
    );
  });

  it("compares per-image times on the reference's inputs only: a faster cell on other inputs is listed apart; warm runs on a set of their own say so", async () => {
    const res = results([
      cell(specs[0], 495, 2030, { choice: { binding: 'stock', set: null }, inputs: ['/f.png'] }),
      cell(specs[1], 165, 1970, {
        choice: { binding: 'capi', set: 'cold' },
        warmRoute: { binding: 'capi', set: 'warm' },
      }),
      cell(specs[3], 545, 3450, { choice: { binding: 'stock', set: null } }),
    ]);
    await analyse(res, path.join(tmp, 'rec4'));
    assert.equal(
      res.recommendations[0],
      'Fastest cell that passes everything: cuda-fast-fp16 (cuda fast fp16, C API, cold set cold and warm set warm, median 0.165 s per image warm, 1.97 s cold; 3.3x the stock baseline cuda-stock-fp32).',
    );
    assert.equal(
      res.recommendations[1],
      'Restoring other inputs, so not compared: cpu-fp32 (f.png: 0.495 s per image warm).',
    );
  });

  it('keeps the line without a recorded route, and gives no ratio without a passing stock cell or for a stock-binding provider', async () => {
    const res = results([
      cell(specs[0], 4000, 6000),
      cell(specs[1], 152, 1210),
      cell(specs[3], 927.2, 2500, { passed: false }),
    ]);
    await analyse(res, path.join(tmp, 'rec2'));
    assert.equal(
      res.recommendations[0],
      'Fastest cell that passes everything: cuda-fast-fp16 (cuda fast fp16, median 0.152 s per image warm, 1.21 s cold).',
    );
    assert.equal(res.recommendations[1], 'cuda-stock-fp32 fails at inference: E_SESSION: no');
    const cpuStock = spec('cpu', 'stock', 'fp32', 'cpu-stock-fp32');
    const cpu = results(
      [cell(specs[0], 4000, 6000, { choice: { binding: 'stock', set: null } }), cell(cpuStock, 4100, 6000)],
      [cpuStock],
    );
    await analyse(cpu, path.join(tmp, 'rec3'));
    assert.equal(
      cpu.recommendations[0],
      'Fastest cell that passes everything: cpu-fp32 (cpu fast fp32, stock binding, median 4.000 s per image warm, 6.00 s cold).',
    );
  });

  // findings as the doctor and the runner record them for a CUDA cell on a machine without the provider files
  const finding = (id: string, message: string, fix: string | null, verdict: 'fail' | 'warn' = 'fail') => ({
    id,
    verdict,
    message,
    fix,
  });
  const providerMissing = [
    finding(
      'provider-shared-missing',
      'libonnxruntime_providers_shared.so is not next to libonnxruntime.so.1: the GPU provider files are not installed (or only some were copied)',
      'gpen-lab setup cuda',
    ),
    finding(
      'provider-files-missing',
      'libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so are not in /ort/bin: onnxruntime-node ships without the cuda provider',
      'gpen-lab setup cuda',
    ),
    finding(
      'lib-missing',
      'libcublas.so.13 (cuBLAS, DT_NEEDED) not found by the dynamic loader',
      'install cuBLAS for CUDA 13 (libcublas-13-0) or pip install nvidia-cublas, then export LD_LIBRARY_PATH=<its folder>:$LD_LIBRARY_PATH',
    ),
  ];
  const noGpu = [
    finding(
      'no-gpu',
      'no NVIDIA GPU or driver found: nvml: libnvidia-ml.so.1: cannot open shared object file',
      'cpu runs here; GPU providers need an NVIDIA GPU and driver',
      'warn',
    ),
    finding(
      'no-gpu',
      'no NVIDIA GPU or driver is visible (nvml: libnvidia-ml.so.1: cannot open shared object file)',
      'run on a machine with an NVIDIA GPU and driver (in a container: --gpus all with the NVIDIA Container Toolkit), or use --provider cpu',
    ),
  ];
  const failing = (s: CellSpec, findings: ReturnType<typeof finding>[]): CellResult => ({
    ...cell(s, 0, 0, { passed: false }),
    doctor: { verdict: 'fail', findings, libraries: [] },
  });
  const H100 = {
    gpu: {
      source: 'nvml',
      driver: '580.159.04',
      cuda: '13.0',
      devices: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', memoryTotalMiB: 81559 }],
    },
  };
  const fixOf = (line: string | undefined) => line?.split(' Fix: ')[1] ?? '';

  it('the first fix follows the root cause: no GPU on the machine, the provider files on a GPU host, TensorRT where only it is missing', async () => {
    // the same install on a machine without a GPU: the provider files are missing too, but no download can help here
    const here = results([
      cell(specs[0], 400, 900, { choice: { binding: 'stock', set: null } }),
      failing(specs[1], [providerMissing[0], noGpu[0], ...providerMissing.slice(1), noGpu[1]]),
      failing(specs[3], [providerMissing[0], noGpu[0], ...providerMissing.slice(1), noGpu[1]]),
    ]);
    here.machine = { cores: 2, gpu: { source: 'none', driver: null, cuda: null, devices: [] } };
    await analyse(here, path.join(tmp, 'cause-no-gpu'));
    const line = here.recommendations.find((r) => r.startsWith('cuda-fast-fp16 fails at inference'));
    assert.match(line ?? '', /^cuda-fast-fp16 fails at inference: this machine has no NVIDIA GPU/);
    assert.match(
      fixOf(line),
      /^run on a host with an NVIDIA GPU and driver .*, or use the cells that pass here: cpu-fp32/,
    );
    assert.ok(!fixOf(line).startsWith('gpen-lab setup cuda'), line);
    assert.deepEqual(
      [rootCause(here, here.cells[1])?.id, rootCause(here, here.cells[1])?.elsewhere],
      ['no-gpu', 'gpen-lab setup cuda'],
      'setup cuda is what the install needs on a GPU host, after the move',
    );
    // report.md: the two cells failing for that reason are one group, led by the cause and its fix
    const md = renderMarkdown(here);
    const failures = md.slice(md.indexOf('## Failures'), md.indexOf('## Recommendations'));
    assert.equal(failures.match(/^### /gm)?.length, 1, failures);
    assert.match(
      failures,
      /^### cuda-fast-fp16, cuda-stock-fp32: fail at inference\n\nCause: this machine has no NVIDIA GPU.*\n\nFix: `run on a host with an NVIDIA GPU/m,
    );
    assert.match(
      md,
      /\*\*1 of 3 cells pass; fastest: cpu-fp32 \(median 0\.400 s per image warm\); reference: cpu-fp32; 2 fail: this machine has no NVIDIA GPU.* \(cuda-fast-fp16, cuda-stock-fp32\)\.\*\*/,
    );
    assert.match(md, /GPU: none \(no NVIDIA GPU or driver found\)/);

    // the same findings on a GPU host (no no-gpu finding): the provider files are the cause, setup cuda the fix
    const gpu = results([failing(specs[1], providerMissing)]);
    gpu.machine = H100;
    await analyse(gpu, path.join(tmp, 'cause-gpu'));
    assert.equal(fixOf(gpu.recommendations.find((r) => r.startsWith('cuda-fast-fp16'))), 'gpen-lab setup cuda');
    assert.equal(rootCause(gpu, gpu.cells[0])?.id, 'provider-shared-missing');
    assert.deepEqual(
      rootCause(gpu, gpu.cells[0])?.also.map((f) => f.id),
      ['lib-missing'],
      'the other provider-files finding has the same fix: said once',
    );
    // with no machine record the cell's own no-gpu finding is enough
    const unknown = results([failing(specs[1], [...providerMissing, noGpu[1]])]);
    assert.equal(rootCause(unknown, unknown.cells[0])?.id, 'no-gpu');

    // TensorRT's provider present but libnvinfer missing: install TensorRT; "could not be loaded" (setup cuda) only restates it
    const trtSpec = spec('tensorrt', 'fast', 'fp16', 'tensorrt-fp16');
    const trt = results(
      [
        failing(trtSpec, [
          finding(
            'provider-dependency-missing',
            'libonnxruntime_providers_tensorrt.so needs libnvinfer.so.10 (TensorRT), which the dynamic loader cannot find',
            'install TensorRT 10 for CUDA 13 (apt libnvinfer10 or pip install tensorrt-cu13), then export LD_LIBRARY_PATH=<the folder holding libnvinfer.so.10>:$LD_LIBRARY_PATH',
          ),
          finding('ep-append-failed', 'the TensorRT provider library could not be loaded', 'gpen-lab setup cuda'),
          finding(
            'lib-missing',
            'libnvinfer.so.10, libnvinfer_plugin.so.10 (TensorRT, DT_NEEDED) not found by the dynamic loader',
            'install TensorRT 10 for CUDA 13 (apt libnvinfer10 or pip install tensorrt-cu13), then export LD_LIBRARY_PATH=<its folder>:$LD_LIBRARY_PATH',
          ),
        ]),
      ],
      [trtSpec],
    );
    trt.machine = H100;
    await analyse(trt, path.join(tmp, 'cause-trt'));
    assert.match(
      fixOf(trt.recommendations.find((r) => r.startsWith('tensorrt-fp16'))),
      /^install TensorRT 10 for CUDA 13/,
    );
    assert.ok(!rootCause(trt, trt.cells[0])!.also.some((f) => f.id === 'ep-append-failed'));
    assert.ok(
      !renderMarkdown(trt).includes('gpen-lab setup cuda'),
      'setup cuda cannot help where the provider files are there',
    );
  });

  it('one statistic, the median, named, in the recommendation, report.md and report.html', async () => {
    const c = cell(specs[0], 0, 0, { choice: { binding: 'stock', set: null } });
    c.warm.total = timingStats([100, 110, 400]); // median 110, mean 203.3
    c.cold.total = timingStats([1000, 1200, 3000]); // median 1200, mean 1733.3
    const res = results([c]);
    res.config.reference = 'cpu-fp32';
    await analyse(res, path.join(tmp, 'stat'));
    assert.equal(
      res.recommendations[0],
      'Fastest cell that passes everything: cpu-fp32 (cpu fast fp32, stock binding, median 0.110 s per image warm, 1.20 s cold).',
    );
    const md = renderMarkdown(res);
    assert.match(md, /^\| warm per image \(median, min … max, runs\) \| 110 ms \(100 ms … 400 ms, 3 runs\) \|$/m);
    assert.match(md, /^\| first image, cold \(median, min … max, runs\) \| 1\.20 s \(1\.00 s … 3\.00 s, 3 runs\) \|$/m);
    assert.match(md, /^## Recommendations \(median times\)$/m);
    assert.match(md, /fastest: cpu-fp32 \(median 0\.110 s per image warm\)/);
    const html = await renderHtml(res, path.join(tmp, 'stat'));
    assert.ok(
      html.includes(
        '<th>warm per image (median, min … max, runs)</th><td class="">110 ms (100 ms … 400 ms, 3 runs)</td>',
      ),
    );
    assert.ok(html.includes('fastest: cpu-fp32 (median 0.110 s per image warm)'));
    const data = JSON.parse(/<script type="application\/json" id="lab-data">(.*?)<\/script>/s.exec(html)![1]) as {
      cells: { warm: Record<string, number>; cold: Record<string, number> }[];
    };
    assert.deepEqual(
      data.cells[0].warm,
      { median: 110, min: 100, max: 400, runs: 3 },
      'the latency chart draws the median',
    );
    for (const text of [md, html, res.recommendations.join('\n')]) {
      assert.ok(!/\b(203|1733|1\.73 s|0\.203)\b/.test(text), 'no mean anywhere');
      assert.ok(!/\bmean ±/.test(text));
    }
  });
});

describe('a lab in fresh processes', () => {
  let res: LabResults;
  let out: string;
  before(async () => {
    const segv = path.join(tmp, 'segv.mjs');
    writeFileSync(segv, "process.kill(process.pid, 'SIGSEGV');\n");
    const hang = path.join(tmp, 'hang.mjs');
    writeFileSync(hang, 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\n');
    out = path.join(tmp, 'lab');
    const cfg = normalizeConfig(
      {
        inputs: [FACE],
        model: { identity: 64 },
        coldRuns: 2,
        warmRuns: 2,
        timeoutSec: 10,
        cells: [
          { provider: 'cpu', id: 'cpu' },
          { provider: 'cpu', id: 'cpu-1t', session: { intraOpNumThreads: 1 } },
          { provider: 'cpu', id: 'segfault', env: { NODE_OPTIONS: `--import=${segv}` } },
          { provider: 'cpu', id: 'hang', env: { NODE_OPTIONS: `--import=${hang}` } },
          { provider: 'cuda', id: 'cuda', route: 'stock' },
          { provider: 'cuda', id: 'cuda-heuristic', session: { cudaOptions: { cudnn_conv_algo_search: 'HEURISTIC' } } },
        ],
      },
      tmp,
    );
    res = await runLab(cfg, { out });
  });

  it('passing cells record every stage, cold and warm timings as hyperfine does, and agree with each other', () => {
    const cpu = res.cells.find((c) => c.id === 'cpu')!;
    assert.deepEqual(
      [cpu.stages.startup?.ok, cpu.stages.dependencies?.ok, cpu.stages.inference?.ok, cpu.stages.output?.ok],
      [true, true, true, true],
    );
    assert.deepEqual(cpu.provider.ran, ['cpu']);
    assert.equal(cpu.runs.length, 2);
    assert.equal(cpu.cold.total?.runs, 2);
    assert.equal(cpu.cold.total?.times.length, 2);
    assert.equal(cpu.warm.total?.runs, 2);
    for (const k of ['spawn', 'module', 'session', 'decode', 'detect', 'align', 'infer', 'paste', 'encode', 'write'])
      assert.ok(cpu.cold.stages[k]?.runs === 2, k);
    assert.ok(cpu.output.psnr! > 20 && cpu.output.ssim! > 0.8, `${cpu.output.psnr} ${cpu.output.ssim}`);
    assert.equal(res.reference, 'cpu');
    const t1 = res.cells.find((c) => c.id === 'cpu-1t')!;
    assert.equal(t1.output.visuallyLossless, true);
    assert.deepEqual([t1.output.vsReference?.psnr, t1.output.vsReference?.ssim], [100, 1]);
    assert.ok(existsSync(path.join(out, t1.output.vsReference!.heatmap!)));
    assert.deepEqual(
      res.pairs.map((p) => [p.a, p.b]),
      [['cpu', 'cpu-1t']],
    );
    assert.equal(res.schema, 'gpen-lab.results/1');
  });

  it('a segfault is a result with its signal and the stage reached; the lab goes on', () => {
    const c = res.cells.find((x) => x.id === 'segfault')!;
    assert.equal(c.status, 'done');
    assert.equal(c.runs.length, 1, 'a failing environment is not run again');
    assert.deepEqual([c.runs[0].ok, c.runs[0].signal, c.runs[0].stage], [false, 'SIGSEGV', 'startup']);
    assert.match(c.runs[0].error ?? '', /killed by SIGSEGV at stage startup/);
    assert.equal(c.stages.startup?.ok, false);
  });

  it('a hang is killed at the timeout and recorded', () => {
    const c = res.cells.find((x) => x.id === 'hang')!;
    assert.deepEqual([c.runs[0].timedOut, c.runs[0].ok], [true, false]);
    assert.match(c.runs[0].error ?? '', /timed out after 10 s at stage startup/);
  });

  it("a provider that cannot load fails at inference with the doctor's reason and fix", () => {
    const c = res.cells.find((x) => x.id === 'cuda')!;
    assert.deepEqual(
      [c.stages.startup?.ok, c.stages.dependencies?.ok, c.stages.inference?.ok, c.stages.output],
      [true, false, false, null],
    );
    assert.equal(c.runs[0].stage, 'inference');
    assert.match(c.runs[0].error ?? '', /E_PROVIDER_UNAVAILABLE/);
    assert.ok(c.doctor?.findings.some((f) => f.fix === 'gpen-lab setup cuda'));
    assert.ok(
      res.recommendations.some((r) => r.startsWith('cuda fails at inference') && r.includes('gpen-lab setup cuda')),
      res.recommendations.join('\n'),
    );
    // the same through the C API route (CUDA provider options): the same diagnosis, and the options are recorded
    const h = res.cells.find((x) => x.id === 'cuda-heuristic')!;
    assert.equal(h.runs[0].stage, 'inference');
    assert.match(h.runs[0].error ?? '', /E_PROVIDER_UNAVAILABLE/);
    assert.ok(h.doctor?.findings.some((f) => f.fix === 'gpen-lab setup cuda'));
    assert.deepEqual(h.env.session, { cudaOptions: { cudnn_conv_algo_search: 'HEURISTIC' } });
  });

  it('report re-renders from results.json alone, the same', () => {
    const md = readFileSync(path.join(out, 'report.md'), 'utf8');
    assert.equal(md, renderMarkdown(res));
    const other = path.join(tmp, 'again');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', 'report', path.join(out, 'results.json'), '--out', other],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(path.join(other, 'report.md'), 'utf8'), md);
    assert.ok(readFileSync(path.join(other, 'report.html'), 'utf8').includes('data-chart="radar"'));
    assert.match(md, /\| start-up \| pass \| pass \| FAIL \| FAIL \| pass \|/);
  });
});

describe('a lab killed with SIGKILL, then resumed', () => {
  it('keeps every completed cell as it was and runs only the rest', async () => {
    const cfgFile = path.join(tmp, 'resume.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        inputs: [FACE],
        model: { identity: 64 },
        coldRuns: 2,
        warmRuns: 1,
        timeoutSec: 60,
        cells: ['a', 'b', 'c', 'd'].map((id) => ({ provider: 'cpu', id })),
      }),
    );
    const out = path.join(tmp, 'resume-lab');
    const results = path.join(out, 'results.json');
    // the timeout is a safety net only: a lab that hangs is killed before its second cell, and the test fails
    const lab = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'lab', cfgFile, '--out', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 300_000,
      killSignal: 'SIGKILL',
    });
    const progress = readLines(lab.stderr);
    const closed = new Promise((r) => lab.once('close', r));
    // the second cell starts only once the first one's result is in results.json
    await progress.waitFor(/^\[cell 2\/4\] b: run 1\//);
    lab.kill('SIGKILL');
    await closed;
    const before = JSON.parse(readFileSync(results, 'utf8')) as LabResults;
    const kept = before.cells.filter((c) => c.status === 'done');
    assert.ok(kept.length >= 1 && kept.length < 4, `killed after ${kept.length} cells`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'lab', '--resume', '--out', out], {
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, CI: 'true' },
    });
    assert.equal(r.status, 0, r.stderr);
    const afterRes = JSON.parse(readFileSync(results, 'utf8')) as LabResults;
    assert.deepEqual(
      afterRes.cells.map((c) => [c.id, c.status]),
      [
        ['a', 'done'],
        ['b', 'done'],
        ['c', 'done'],
        ['d', 'done'],
      ],
    );
    for (const k of kept) {
      const now = afterRes.cells.find((c) => c.id === k.id)!;
      assert.deepEqual([now.finishedAt, now.runs], [k.finishedAt, k.runs], `${k.id} was not re-run`);
      assert.match(r.stderr, new RegExp(`${k.id}: done in an earlier run: kept`));
    }
    assert.ok(existsSync(path.join(out, 'report.html')));
  });
});
