// Runs prepare-worker for one model and returns what prepareModel would have, without blocking the event loop.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { GpenLabError } from '../errors.js';
import type { WireError } from './protocol.js';
import type { Precision } from '../model/gpen-graph.js';
import type { GraphForm, ModelSpec, PreparedModel } from '../model/registry.js';

export function prepareInWorker(
  model: ModelSpec,
  precision: Precision | undefined,
  form: GraphForm = {},
): Promise<PreparedModel> {
  const js = fileURLToPath(new URL('./prepare-worker.js', import.meta.url));
  const file = existsSync(js) ? js : fileURLToPath(new URL('./prepare-worker.ts', import.meta.url));
  // built: the .js file; from the sources (tests, tsx): register tsx inside the worker, then import the .ts
  const worker = file.endsWith('.js')
    ? new Worker(file, { workerData: { model, precision, form } })
    : new Worker(
        new URL(
          `data:text/javascript,${encodeURIComponent(`import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(pathToFileURL(file).href)});`)}`,
        ),
        { workerData: { model, precision, form } },
      );
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { ok: true; prepared: PreparedModel } | { ok: false; error: WireError }) => {
      void worker.terminate();
      if (m.ok) resolve(m.prepared);
      else reject(new GpenLabError(m.error.code, m.error.message, m.error.fix, m.error.details));
    });
    worker.once('error', (e) => reject(e));
  });
}
