// A face worker (worker_threads): warps faces out of a photo and samples restored faces back into it, on memory
// shared with the pipeline (SharedArrayBuffer), so that the 29 faces of a group photo are aligned and pasted on
// several cores. Messages and replies are FaceJob / FaceReply from face-workers.ts.
import { parentPort } from 'node:worker_threads';
import { deflateStripe } from '../io/png.js';
import type { FaceJob, FaceReply } from './face-workers.js';
import { compositeRows, facePatch, pasteMask, warmPaste } from './paste.js';
import { fillDetectorInput } from './resample.js';
import { warpToTensor } from './warp.js';

const port = parentPort;
if (!port) throw new Error('face-worker.ts runs as a worker thread');

port.on('message', (job: FaceJob) => {
  let reply: FaceReply;
  const transfer: ArrayBuffer[] = [];
  try {
    if (job.kind === 'warp') {
      for (const f of job.faces) warpToTensor(job.img, f.toCrop, job.size, job.out, f.offset);
      reply = { id: job.id, ok: true, patches: [] };
    } else if (job.kind === 'detector') {
      const per = job.size * job.size * 3;
      for (const d of job.inputs)
        fillDetectorInput(job.levels, job.size, d.input, job.out.subarray(d.offset, d.offset + per));
      reply = { id: job.id, ok: true, patches: [] };
    } else if (job.kind === 'composite') {
      compositeRows(job.band);
      reply = { id: job.id, ok: true, patches: [] };
    } else if (job.kind === 'warm') {
      warmPaste(job.size);
      reply = { id: job.id, ok: true, patches: [] };
    } else if (job.kind === 'png') {
      const stripes = job.stripes.map(deflateStripe);
      for (const st of stripes) transfer.push(st.data.buffer as ArrayBuffer);
      reply = { id: job.id, ok: true, patches: [], stripes };
    } else {
      const mask = pasteMask(job.size);
      const patches = job.faces.map((f) =>
        facePatch(job.crops, job.size, f.toCrop, mask, job.width, job.height, f.offset, f.smooth),
      );
      for (const p of patches) transfer.push(p.mask.buffer as ArrayBuffer, p.face.buffer as ArrayBuffer);
      reply = { id: job.id, ok: true, patches };
    }
  } catch (e) {
    reply = { id: job.id, ok: false, error: (e as Error).stack ?? String(e), patches: [] };
  }
  port.postMessage(reply, transfer);
});
