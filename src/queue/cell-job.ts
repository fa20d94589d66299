// A lab cell sent over a queue, run on the worker that takes it: its inputs written to a folder of its own, the
// cell run there as on a local lab (fresh processes, the worker's GPU), the cell's folder and result sent back.
import { existsSync, mkdtempSync } from 'node:fs';
import { readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { sha256File } from '../io/hash.js';
import { readGpus } from '../doctor/gpu.js';
import { prepareModel, type ModelSpec } from '../model/registry.js';
import { PROVIDER_SPECS } from '../runtime/providers.js';
import { runCell } from '../lab/cell.js';
import { runCommandCell } from '../lab/command-cell.js';
import { modelSpecOf } from '../lab/config.js';
import type { LabConfig } from '../lab/types.js';
import type { CellJobData, CellJobResult } from './jobs.js';

async function filesUnder(root: string, dir = root): Promise<{ path: string; base64: string }[]> {
  const out: { path: string; base64: string }[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const f = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(root, f)));
    else if (e.isFile()) out.push({ path: path.relative(root, f), base64: (await readFile(f)).toString('base64') });
  }
  return out;
}

/** The model file the lab's hash names: the lab's own path where it is here, else this worker's --model. */
async function modelFile(d: CellJobData, own: ModelSpec): Promise<string | undefined> {
  const want = d.config.model.file;
  if (!want || !d.modelSha256) return undefined;
  if (existsSync(want) && (await sha256File(want)) === d.modelSha256) return want;
  if (own.type === 'file' && (await sha256File(own.file)) === d.modelSha256) return own.file;
  throw new GpenLabError(
    'E_FILE_MISSING',
    `cell ${d.cell.id}: the lab's model ${want} (sha256 ${d.modelSha256.slice(0, 12)}) is not on this worker`,
    'Put the weights at the same path on the worker (shared storage), or start the worker with --model naming that file.',
    { input: want },
  );
}

export async function runCellJob(
  d: CellJobData,
  o: { allowCommands: boolean; model: ModelSpec },
): Promise<Omit<CellJobResult, 'worker'>> {
  const c = d.cell;
  const vars = Object.keys(c.env ?? {});
  if (!o.allowCommands && (c.command || vars.length > 0))
    throw new GpenLabError(
      'E_NOT_ALLOWED',
      `cell ${c.id} ${c.command ? 'is a command cell' : `sets ${vars.join(', ')}`}; this worker runs neither commands nor a cell's environment: it was started without --allow-commands`,
      "Start the queue's workers with --allow-commands where the lab's commands may run, or give the cell another launcher.",
      { input: c.id },
    );
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-cell-'));
  try {
    const inDir = path.join(tmp, 'in');
    const out = path.join(tmp, 'out');
    await mkdir(inDir, { recursive: true });
    const inputs: string[] = [];
    for (const f of d.inputs) {
      const p = path.join(inDir, path.basename(f.name));
      await writeFile(p, Buffer.from(f.base64, 'base64'));
      inputs.push(p);
    }
    const file = await modelFile(d, o.model);
    const cfg: LabConfig = {
      ...d.config,
      model: file ? { ...d.config.model, file } : d.config.model,
      inputs,
      cells: [],
    };
    const cell = { ...c, launcher: { type: 'local' as const } };
    delete cell.inputs;
    cfg.cells = [cell];
    if (cfg.model.synthetic) await prepareModel(modelSpecOf(cfg.model, path.join(out, '.cache')), c.precision);
    const gpus = PROVIDER_SPECS[c.provider].gpu ? await readGpus() : null;
    const gpu = gpus && gpus.devices.length === 0 ? 'no NVIDIA GPU or driver found' : null;
    const r = cell.command
      ? await runCommandCell(cell, cfg, out, gpu, () => undefined)
      : await runCell(cell, cfg, out, gpu, () => undefined);
    const cellDir = path.join(out, 'cells', c.id);
    return {
      result: JSON.stringify(r),
      outRoot: out,
      inputs,
      host: os.hostname(),
      files: existsSync(cellDir) ? await filesUnder(cellDir) : [],
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
