// Command cells: anything that restores a face, measured like gpen-lab's own cells. A small script stands in for the
// user's deployment (it copies its input to its output and prints the protocol's lines): probes as stages, fresh
// processes, stage and warm times from the protocol, the output decoded and compared with a gpen-lab cell's in one
// lab; a crash, a hang, no output, a non-image and a missing program each a recorded failure at its stage while the
// lab goes on. Containers: the docker and podman command lines exactly, the engine missing for real, and image
// missing and GPUs refused through one stand-in engine on PATH replaying docker's documented stderr and exit code.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { SCHEMA_FILE, normalizeConfig } from '../src/lab/config.js';
import { runCommandCell, protocolOf } from '../src/lab/command-cell.js';
import { dockerLauncher, engineFailure } from '../src/lab/launchers.js';
import { runLab } from '../src/lab/runner.js';
import { rgbOf } from '../src/lab/analyse.js';
import type { CellSpec, LabConfig } from '../src/lab/types.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-command-'));
const FACE = path.resolve('assets/demo-face.png');
const script = path.join(tmp, 'restore.mjs');

before(() => {
  // argv: MODE INPUT OUTPUT; copies the input (ok), or crashes, hangs, writes nothing or writes text
  writeFileSync(
    script,
    `import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
const [mode, input, output] = process.argv.slice(2);
if (mode === 'crash') { console.error('CUDA error: no kernel image is available for execution on the device'); process.exit(3); }
if (mode === 'hang') setInterval(() => {}, 1000);
else {
  console.log('@@gpen-lab stage model 40');
  console.log('@@gpen-lab stage infer 12.5');
  mkdirSync(path.dirname(output), { recursive: true });
  if (mode === 'ok') copyFileSync(input, output);
  if (mode === 'text') writeFileSync(output, 'not an image');
  console.log('@@gpen-lab warm 7');
  console.log('@@gpen-lab warm 9');
}
`,
  );
});

const cfgOf = (cells: CellSpec[], over: Partial<LabConfig> = {}): LabConfig => ({
  inputs: [FACE],
  model: { identity: 64 },
  coldRuns: 2,
  warmRuns: 0,
  timeoutSec: 60,
  cells,
  ...over,
});
const cell = (id: string, mode: string, over: Partial<CellSpec> = {}): CellSpec => ({
  id,
  provider: 'cpu',
  route: 'fast',
  precision: 'fp32',
  gpu: false,
  command: { argv: [process.execPath, script, mode, '{input}', '{output}'] },
  ...over,
});
const run = (c: CellSpec, cfg = cfgOf([c])) =>
  runCommandCell(c, cfg, path.join(tmp, `lab-${c.id}`), 'no GPU', () => undefined);

describe('command cells', () => {
  it('reads the protocol: stage times summed, warm runs listed, other lines ignored', () => {
    assert.deepEqual(
      protocolOf('x\n@@gpen-lab stage infer 10\n@@gpen-lab stage infer 2.5\n@@gpen-lab warm 7\n@@gpen-lab bogus 1\n'),
      {
        stages: { infer: 12.5 },
        warm: [7],
      },
    );
  });

  it('runs each cold run as a fresh process: probes as stages, times from the protocol, the output decoded back', async () => {
    const c = cell('copy', 'ok', {
      command: {
        argv: [process.execPath, script, 'ok', '{input}', '{output}'],
        probes: {
          startup: [process.execPath, '-e', 'console.log("node " + process.version)'],
          dependencies: [process.execPath, '-e', 'require("node:zlib"); console.log("zlib ok")'],
        },
      },
    });
    const r = await run(c);
    assert.match(r.stages.startup?.reason ?? '', /node v20/);
    assert.deepEqual(r.stages.dependencies, { ok: true, reason: `${process.execPath}: zlib ok` });
    assert.equal(r.stages.inference?.ok, true);
    assert.equal(r.stages.output?.ok, true);
    assert.equal(r.runs.length, 2);
    assert.ok(r.runs.every((x) => x.ok && x.stage === 'done' && x.total_ms! > 0));
    assert.equal(r.cold.stages.infer.median, 12.5);
    assert.equal(r.cold.stages.model.median, 40);
    assert.equal(r.cold.total?.runs, 2);
    assert.deepEqual(r.warm.total?.times, [7, 9, 7, 9], 'two warm runs a process, two processes');
    assert.equal(r.output.psnr, 100, 'a copy of its input');
    assert.deepEqual(readFileSync(r.commandOutputs![0].output), readFileSync(FACE));
    assert.equal(r.env.launcher, 'local');
    assert.deepEqual(r.env.command?.argv.slice(2), ['ok', '{input}', '{output}']);
  });

  it('a failing dependency probe fails its stage with the probe’s words', async () => {
    const c = cell('deps', 'ok', {
      command: {
        argv: [process.execPath, script, 'ok', '{input}', '{output}'],
        probes: {
          dependencies: [
            process.execPath,
            '-e',
            'console.error("ModuleNotFoundError: No module named \'facexlib\'"); process.exit(1)',
          ],
        },
      },
    });
    const r = await run(c);
    assert.equal(r.stages.dependencies?.ok, false);
    assert.match(
      r.stages.dependencies?.reason ?? '',
      /the dependencies probe exited 1: ModuleNotFoundError: No module named 'facexlib'/,
    );
  });

  it('a crash is a failure at inference, matched against the doctor’s CUDA signatures; no second run', async () => {
    const r = await run(cell('crash', 'crash'));
    assert.equal(r.runs.length, 1);
    assert.equal(r.runs[0].stage, 'inference');
    assert.equal(r.runs[0].exitCode, 3);
    assert.match(r.runs[0].stderrTail, /no kernel image/);
    assert.equal(r.stages.inference?.ok, false);
    assert.equal(r.stages.output, null);
    assert.ok(
      r.doctor?.findings.some((f) => f.id === 'no-kernel-image'),
      JSON.stringify(r.doctor?.findings.map((f) => f.id)),
    );
  });

  it('a hang is killed at the timeout with what it started, and recorded as timed out', async () => {
    const c = cell('hang', 'hang', {
      command: { argv: [process.execPath, script, 'hang', '{input}', '{output}'], timeoutSec: 1 },
    });
    const r = await run(c);
    assert.equal(r.runs[0].timedOut, true);
    assert.match(r.runs[0].error ?? '', /timed out after 1 s/);
    assert.equal(r.stages.inference?.ok, false);
  });

  it('no output and a non-image are failures at the output stage', async () => {
    const none = await run(cell('none', 'none'));
    assert.equal(none.runs[0].stage, 'output');
    assert.match(none.runs[0].error ?? '', /exited 0 but wrote no .*0-demo-face\.png/);
    assert.deepEqual([none.stages.inference?.ok, none.stages.output?.ok], [true, false]);
    const text = await run(cell('text', 'text'));
    assert.equal(text.runs[0].stage, 'output');
    assert.match(text.runs[0].error ?? '', /is not an image/);
  });

  it('a program that does not exist fails at start-up with the fix', async () => {
    const r = await run(cell('missing', 'ok', { command: { argv: [path.join(tmp, 'no-such-program'), '{input}'] } }));
    assert.equal(r.runs[0].stage, 'startup');
    assert.equal(r.stages.startup?.ok, false);
    assert.ok(r.doctor?.findings.some((f) => f.id === 'command-not-found'));
  });

  it('one lab: a command cell beside a gpen-lab cell, outputs compared, failing cells recorded and the lab going on', async () => {
    const out = path.join(tmp, 'lab-mixed');
    const cfg = normalizeConfig(
      {
        inputs: [FACE],
        model: { identity: 64 },
        coldRuns: 1,
        warmRuns: 0,
        reference: 'cpu-fp32',
        cells: [
          { provider: 'cpu', id: 'cpu-fp32' },
          { id: 'copy', gpu: false, command: { argv: [process.execPath, script, 'ok', '{input}', '{output}'] } },
          { id: 'crash', gpu: false, command: { argv: [process.execPath, script, 'crash', '{input}', '{output}'] } },
        ],
      },
      tmp,
    );
    const res = await runLab(cfg, { out });
    assert.deepEqual(
      res.cells.map((c) => [c.id, c.status, c.stages.output?.ok ?? null]),
      [
        ['cpu-fp32', 'done', true],
        ['copy', 'done', true],
        ['crash', 'done', null],
      ],
    );
    const pair = res.pairs.find((p) => p.b === 'copy' || p.a === 'copy');
    assert.ok(pair && pair.psnr > 20, JSON.stringify(res.pairs));
    assert.ok(res.cells[1].output.vsReference, 'compared with the reference like any cell');
    const md = readFileSync(path.join(out, 'report.md'), 'utf8');
    assert.match(md, /command .*restore\.mjs… fp32 \(local\)/);
    assert.match(md, /not reported/, 'stage times the command did not report are marked, not zero');
  });
});

describe('aligned inputs', () => {
  it("aligned: gpen-lab's cells run the GAN only on the face as given, as GPEN's own script does", async () => {
    const out = path.join(tmp, 'lab-aligned');
    const cfg = normalizeConfig(
      {
        inputs: [FACE],
        aligned: true,
        model: { identity: 64 },
        coldRuns: 1,
        warmRuns: 0,
        cells: [{ provider: 'cpu', id: 'cpu-fp32' }],
      },
      tmp,
    );
    assert.equal(cfg.aligned, true);
    const res = await runLab(cfg, { out });
    const c = res.cells[0];
    assert.equal(c.stages.output?.ok, true, JSON.stringify(c.runs));
    const job = JSON.parse(readFileSync(path.join(out, 'cells', 'cpu-fp32', 'job-0.json'), 'utf8')) as {
      aligned?: boolean;
    };
    assert.equal(job.aligned, true);
    // no detection: the GAN's output at the model's size, 64 px for the 92 px face
    assert.equal(c.restore?.stages_ms.detect ?? 0, 0);
    const img = await rgbOf(c.restore!.outputs.gpen!);
    assert.deepEqual([img.width, img.height], [64, 64]);
  });
});

describe('container launchers', () => {
  const ctx = {
    cellId: 'torch',
    cellDir: '/labs/x/cells/torch',
    inputs: ['/photos/a.png', '/photos/b.png', '/faces/c.png'],
  };

  it('docker: the command line built from the cell, inputs and the cell folder mounted', () => {
    const l = dockerLauncher(
      {
        type: 'docker',
        image: 'gpen:torch',
        gpus: 'all',
        volumes: ['/usr/local/cuda-11.8:/usr/local/cuda:ro'],
        env: { A: '1' },
      },
      ctx,
    );
    const argv = [
      'python',
      'inference_gpen.py',
      '--input',
      l.inputPath('/faces/c.png'),
      '--out',
      l.outputPath('/labs/x/cells/torch/run-0/0-c.png'),
    ];
    assert.deepEqual(argv.slice(3), ['/gpen-lab/in1/c.png', '--out', '/gpen-lab/out/run-0/0-c.png']);
    const s = l.spawn(argv, { CUDA_VISIBLE_DEVICES: '0' }, 'gpen-lab-torch-0');
    assert.equal(s.file, 'docker');
    assert.deepEqual(s.args, [
      'run',
      '--rm',
      '--name',
      'gpen-lab-torch-0',
      '--gpus',
      'all',
      '-v',
      '/photos:/gpen-lab/in0:ro',
      '-v',
      '/faces:/gpen-lab/in1:ro',
      '-v',
      '/labs/x/cells/torch:/gpen-lab/out',
      '-v',
      '/usr/local/cuda-11.8:/usr/local/cuda:ro',
      '-e',
      'A=1',
      '-e',
      'CUDA_VISIBLE_DEVICES=0',
      'gpen:torch',
      ...argv,
    ]);
    assert.equal(l.describe, 'docker gpen:torch (--gpus all), -v /usr/local/cuda-11.8:/usr/local/cuda:ro');
  });

  it('podman: the same, the GPUs as a CDI device', () => {
    const s = dockerLauncher({ type: 'docker', engine: 'podman', image: 'gpen:torch', gpus: 'all' }, ctx).spawn(
      ['true'],
      {},
      't',
    );
    assert.equal(s.file, 'podman');
    assert.deepEqual(s.args.slice(0, 6), ['run', '--rm', '--name', 't', '--device', 'nvidia.com/gpu=all']);
  });

  const dockerCell = (id: string, engine?: 'docker' | 'podman'): CellSpec => ({
    id,
    provider: 'cuda',
    route: 'fast',
    precision: 'fp32',
    gpu: false,
    command: { argv: ['python', 'inference_gpen.py', '--input', '{input}', '--out', '{output}'] },
    launcher: { type: 'docker', image: 'gpen:torch', gpus: 'all', ...(engine ? { engine } : {}) },
  });
  const withPath = async <T>(dir: string, f: () => Promise<T>): Promise<T> => {
    const old = process.env.PATH;
    process.env.PATH = dir;
    try {
      return await f();
    } finally {
      process.env.PATH = old;
    }
  };

  it('the engine missing, for real: a coded failure at start-up naming the package', async () => {
    const empty = path.join(tmp, 'empty-path');
    mkdirSync(empty, { recursive: true });
    const r = await withPath(empty, () => run(dockerCell('no-engine')));
    const f = r.doctor?.findings.find((x) => x.id === 'launcher-engine-missing');
    assert.ok(f, JSON.stringify(r.doctor?.findings));
    assert.match(f.message, /docker is not installed here: spawn docker: spawn docker ENOENT/);
    assert.match(f.fix ?? '', /apt-get install docker\.io/);
    assert.equal(r.runs[0].stage, 'startup');
  });

  it('image missing and GPUs refused, through one stand-in engine replaying docker’s stderr and exit code', async () => {
    // the one stand-in: docker 24-27's own words for these two cases, exit 125 as docker run gives
    const bin = path.join(tmp, 'fake-engine');
    mkdirSync(bin, { recursive: true });
    const fake = path.join(bin, 'docker');
    writeFileSync(
      fake,
      `#!/bin/sh
if [ -n "$FAKE_NO_GPU" ]; then
  echo 'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].' >&2
else
  echo "Unable to find image 'gpen:torch' locally" >&2
  echo "docker: Error response from daemon: pull access denied for gpen, repository does not exist or may require 'docker login': denied: requested access to the resource is denied." >&2
fi
exit 125
`,
    );
    chmodSync(fake, 0o755);
    const image = await withPath(`${bin}:/usr/bin:/bin`, () => run(dockerCell('image-missing')));
    const f = image.doctor?.findings.find((x) => x.id === 'launcher-image-missing');
    assert.ok(f, JSON.stringify(image.doctor?.findings));
    assert.match(f.message, /the image gpen:torch is not here and could not be pulled: .*pull access denied/);
    assert.equal(
      f.fix,
      'docker pull gpen:torch (or docker build -t gpen:torch .), or name an image that exists (docker images)',
    );
    assert.equal(image.runs[0].stage, 'startup');
    assert.equal(image.runs[0].exitCode, 125);
    process.env.FAKE_NO_GPU = '1';
    try {
      const gpus = await withPath(`${bin}:/usr/bin:/bin`, () => run(dockerCell('no-gpus')));
      const g = gpus.doctor?.findings.find((x) => x.id === 'launcher-gpus-refused');
      assert.ok(g, JSON.stringify(gpus.doctor?.findings));
      assert.match(g.fix ?? '', /nvidia-ctk runtime configure --runtime=docker/);
    } finally {
      delete process.env.FAKE_NO_GPU;
    }
  });

  it('podman’s own words are read too; a command that fails inside a container is the command’s failure', () => {
    const l = { type: 'docker' as const, image: 'x' };
    assert.equal(
      engineFailure('podman', l, { spawnError: null, exitCode: 125, stderr: 'Error: x: image not known\n' })?.id,
      'launcher-image-missing',
    );
    assert.equal(
      engineFailure('podman', l, {
        spawnError: null,
        exitCode: 126,
        stderr: 'Error: setting up CDI devices: unresolvable CDI devices nvidia.com/gpu=all\n',
      })?.id,
      'launcher-gpus-refused',
    );
    assert.equal(
      engineFailure('docker', l, { spawnError: null, exitCode: 1, stderr: 'Traceback ...\nValueError: bad\n' }),
      null,
    );
  });
});

describe('example configs', () => {
  it('every config under examples/ validates against the schema', () => {
    const validate = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object);
    const dir = path.resolve('examples');
    const files = ['lab-cpu.yaml', 'lab-cuda-sets.yaml', 'lab-gpus.yaml', 'lab-torch.yaml'].map((f) =>
      path.join(dir, f),
    );
    for (const f of files) {
      assert.ok(existsSync(f), f);
      const ok = validate(YAML.parse(readFileSync(f, 'utf8')));
      assert.ok(ok, `${f}: ${JSON.stringify(validate.errors)}`);
    }
  });
});
