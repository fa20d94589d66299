// Prepares a model (builds synthetic weights, converts a .pth) in a worker thread, so that the service's event loop
// keeps answering /healthz and /readyz while it loads. Posts the PreparedModel back (the graph bytes transferred).
import { parentPort, workerData } from 'node:worker_threads';
import { prepareModel } from '../model/registry.js';
import type { Precision } from '../model/gpen-graph.js';
import type { GraphForm, ModelSpec } from '../model/registry.js';
import { toWire } from './protocol.js';

const { model, precision, form } = workerData as { model: ModelSpec; precision?: Precision; form?: GraphForm };
try {
  const p = await prepareModel(model, precision, form);
  const transfer = typeof p.model === 'string' ? [] : [p.model.buffer as ArrayBuffer];
  parentPort!.postMessage({ ok: true, prepared: p }, transfer);
} catch (e) {
  parentPort!.postMessage({ ok: false, error: toWire(e) });
}
