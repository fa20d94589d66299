// Runs a lab: its cells in config order (cell.ts runs one), results.json written after every cell so that --resume
// continues without re-running a completed cell, then the analysis and the report.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError, errorMessage } from '../errors.js';
import { readGpus } from '../doctor/gpu.js';
import { readSystem } from '../doctor/system.js';
import { makeDirs, writeFileAtomicSafe } from '../io/files.js';
import { prepareModel } from '../model/registry.js';
import { PROVIDER_SPECS } from '../runtime/providers.js';
import { inputsOf, modelSpecOf } from './config.js';
import type { CellResult, CellSpec, LabConfig, LabResults } from './types.js';
import { RESULTS_SCHEMA } from './types.js';
import { writeReport } from './report.js';
import { analyse, readResults } from './analyse.js';
import { emptyCell, runCell } from './cell.js';
import { runCommandCell } from './command-cell.js';

export { cellPassed } from './verdicts.js';
export { analyse, readResults, recommend } from './analyse.js';
export { expandVars } from './cell.js';
export { stopCells } from './cell-process.js';

export interface LabOptions {
  out: string;
  resume?: boolean;
  /** Runs a cell whose launcher is a queue (src/queue: the lab room does not reach Redis itself). */
  queueCell?: (c: CellSpec, cfg: LabConfig, out: string, progress: (line: string) => void) => Promise<CellResult>;
  /** Progress: one line per step (the CLI shows a bar on a TTY). */
  onProgress?: (e: { cell: string; index: number; total: number; line: string }) => void;
}

export async function runLab(cfg: LabConfig, opts: LabOptions): Promise<LabResults> {
  const out = path.resolve(opts.out);
  try {
    await makeDirs(out);
  } catch (e) {
    throw new GpenLabError(
      'E_WRITE',
      `Could not create the lab's folder ${out}: ${errorMessage(e)}`,
      'Pass --out a folder on a writable file system.',
      { input: out },
    );
  }
  const file = path.join(out, 'results.json');
  let res: LabResults;
  if (opts.resume && existsSync(file)) {
    res = readResults(file);
    cfg = res.config; // the interrupted lab's own config: the cells already done were measured under it
  } else {
    if (opts.resume)
      throw new GpenLabError(
        'E_FILE_MISSING',
        `--resume: ${file} does not exist`,
        `Run the lab into ${out} first, or drop --resume.`,
        { input: file },
      );
    // every input checked before the first cell (a missing one would fail every cell, one by one)
    const missing = [...new Set(cfg.cells.flatMap((c) => inputsOf(cfg, c)))].filter((f) => !existsSync(f));
    if (missing.length)
      throw new GpenLabError(
        'E_FILE_MISSING',
        `The lab's inputs are missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`,
        "Fix the paths in the config (relative paths are resolved from the config's folder).",
        { input: missing[0] },
      );
    const sys = readSystem();
    const gpus = await readGpus();
    res = {
      schema: RESULTS_SCHEMA,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      machine: {
        hostname: os.hostname(),
        cpu: sys.cpu.model,
        cores: sys.cpu.cores,
        memoryGiB: sys.memoryGiB,
        os: `${sys.distro ?? sys.os} (${sys.kernel}, ${sys.arch})`,
        libc: sys.libc,
        container: sys.container,
        node: sys.node,
        onnxruntime: sys.onnxruntime,
        gpu: { source: gpus.source, driver: gpus.driverVersion, cuda: gpus.cudaDriverVersion, devices: gpus.devices },
      },
      config: cfg,
      reference: null,
      cells: [],
      pairs: [],
      recommendations: [],
    };
  }
  const gpuMachine = res.machine.gpu as { source: string; devices: unknown[] };
  const gpuPresent =
    gpuMachine.source === 'none' || gpuMachine.devices.length === 0 ? 'no NVIDIA GPU or driver found' : null;
  const save = () => writeFileAtomicSafe(file, JSON.stringify(res, null, 1));
  // synthetic weights are built once here; the cells' processes load the file like a user's model
  if (cfg.model.synthetic) {
    for (const precision of new Set(cfg.cells.map((c) => c.precision))) {
      const t = Date.now();
      await prepareModel(modelSpecOf(cfg.model, path.join(out, '.cache')), precision);
      opts.onProgress?.({
        cell: 'model',
        index: -1,
        total: cfg.cells.length,
        line: `synthetic GPEN-${cfg.model.synthetic} ${precision} ready in ${path.join(out, '.cache')} (${((Date.now() - t) / 1000).toFixed(1)} s; built once, loaded by every cell)`,
      });
    }
  }
  const queued =
    opts.queueCell ??
    (() => {
      throw new GpenLabError(
        'E_CONFIG',
        "a cell's launcher is a queue, and this lab runs without Redis",
        'Run the lab with `gpen-lab lab CONFIG --redis URL`.',
        { input: 'launcher' },
      );
    });
  const total = cfg.cells.length;
  for (let i = 0; i < total; i++) {
    const c = cfg.cells[i];
    const done = res.cells.find((x) => x.id === c.id && x.status === 'done');
    const progress = (line: string) => opts.onProgress?.({ cell: c.id, index: i, total, line });
    if (done) {
      progress('done in an earlier run: kept');
      continue;
    }
    res.cells = res.cells.filter((x) => x.id !== c.id);
    const placeholder = emptyCell(c, cfg);
    res.cells.push(placeholder);
    await save();
    const gpu = PROVIDER_SPECS[c.provider].gpu ? gpuPresent : null;
    const r =
      c.launcher?.type === 'queue'
        ? await queued(c, cfg, out, progress)
        : c.command
          ? await runCommandCell(c, cfg, out, gpu, progress)
          : await runCell(c, cfg, out, gpu, progress);
    res.cells[res.cells.indexOf(placeholder)] = r;
    await save();
  }
  // cells in config order
  res.cells.sort((a, b) => cfg.cells.findIndex((c) => c.id === a.id) - cfg.cells.findIndex((c) => c.id === b.id));
  await analyse(res, out);
  res.finishedAt = new Date().toISOString();
  await save();
  await writeReport(res, out);
  return res;
}
