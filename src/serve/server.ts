// `gpen-lab serve`: the restoration pipeline behind HTTP (fastify). One session, faces from concurrent requests
// batched together (FaceBatcher), bounded queue (429), readiness after a warm-up inference (503 before), per-request
// timeout (504), coded errors with the right status (413, 415, 422), Prometheus metrics, JSON logs, and a graceful
// shutdown that finishes what was accepted.
import os from 'node:os';
import path from 'node:path';
import multipart from '@fastify/multipart';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import client from 'prom-client';
import { runDoctor } from '../doctor/index.js';
import { GpenLabError, badArgument, errorMessage, isGpenLabError } from '../errors.js';
import type { RestoreResult } from '../face/restore.js';
import { Restorer } from '../face/restore.js';
import type { OutputExt } from '../io/image.js';
import { DEFAULT_MAX_PIXELS, decodeImageBuffer, imageSize, sniffImageFormat } from '../io/image.js';
import type { Precision } from '../model/gpen-graph.js';
import type { ModelSpec } from '../model/registry.js';
import type { ProviderChoice, Route } from '../runtime/routes.js';
import { describeChoice } from '../runtime/routes.js';
import { FaceBatcher } from './batcher.js';
import { prepareInWorker } from './prepare.js';

export interface ServeOptions {
  host?: string;
  port?: number;
  model: ModelSpec;
  /** Default auto (face/choose.ts). */
  provider?: ProviderChoice;
  /** Default fast: on CUDA the C API route with the warm set (runtime/routes.ts), its slower start paid once. */
  route?: Route;
  precision?: Precision;
  /** Faces per inference across requests (default per provider: routes.ts defaultBatch). */
  maxBatch?: number;
  maxWaitMs?: number;
  /** Requests admitted at once (waiting or being processed); more get 429. */
  maxQueue?: number;
  /** Largest request body in bytes (413 above). */
  bodyLimit?: number;
  /** Per-request limit (504 above). */
  timeoutMs?: number;
  maxPixels?: number;
  /**
   * Decoded pixels the requests in progress may hold together (each image counts width x height from its header;
   * default: the machine's memory / 80 bytes, a quarter of it at the ~20 bytes a pixel two 64 MP images held in the
   * flood test, and at least one image of maxPixels). An image beyond what is left waits for none: 429 with Retry-After.
   */
  maxInflightPixels?: number;
  /** Images in the pipeline at once (default: the cores, at least 2); the rest of the admitted wait for a slot. */
  pipelineSlots?: number;
  /** pino level, or false for no log. */
  logLevel?: string | false;
  /** CUDA provider options (ONNX Runtime's names): the GPEN session goes through the C API route (runs off the event loop). */
  cudaOptions?: Record<string, string>;
}

const STATUS: Partial<Record<string, number>> = {
  E_ARGUMENT: 400, E_NOT_FOUND: 404, E_BODY_TOO_LARGE: 413, E_FORMAT_UNKNOWN: 415, E_IMAGE_CORRUPT: 422, E_IMAGE_TOO_LARGE: 422, E_BUSY: 429,
  E_NOT_READY: 503, E_TIMEOUT: 504,
};
const MIME: Record<OutputExt, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.webp': 'image/webp' };

export interface Service {
  app: FastifyInstance;
  /** Resolves once the model is loaded and warmed up (rejects if loading failed). */
  ready: Promise<void>;
  metrics: client.Registry;
  url: string;
  close(): Promise<void>;
}

function parseOptions(q: Record<string, unknown>): { alpha: number; ext: OutputExt; saveFace: boolean } {
  const alpha = q.alpha === undefined ? 1 : Number(q.alpha);
  if (!(alpha >= 0 && alpha <= 1)) throw new GpenLabError('E_ARGUMENT', `Expected a number between 0 and 1 for alpha but received ${JSON.stringify(q.alpha)}`, 'Pass alpha between 0 (original) and 1 (restored).', { input: 'alpha' });
  const f = String(q.format ?? 'png').toLowerCase().replace(/^\./, '');
  const ext = ({ png: '.png', jpg: '.jpg', jpeg: '.jpg', webp: '.webp' } as Record<string, OutputExt>)[f];
  if (!ext) throw new GpenLabError('E_ARGUMENT', `Expected png, jpg or webp for format but received ${JSON.stringify(q.format)}`, 'Pass format=png, jpg or webp.', { input: 'format' });
  const sf = String(q.save_faces ?? 'false').toLowerCase();
  if (!['true', 'false', '1', '0', 'yes', 'no'].includes(sf)) throw new GpenLabError('E_ARGUMENT', `Expected true or false for save_faces but received ${JSON.stringify(q.save_faces)}`, 'Pass save_faces=true or false.', { input: 'save_faces' });
  return { alpha, ext, saveFace: ['true', '1', 'yes'].includes(sf) };
}

/** A counting semaphore: take() resolves when one of `n` slots is free, in arrival order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) { this.free = n; }
  take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** A multipart body the service cannot read, as the client's error: over the limit (413), else malformed (400). */
function multipartError(e: unknown, limit: number): GpenLabError {
  const code = (e as { code?: string }).code ?? '';
  const said = errorMessage(e);
  if (code === 'FST_FILES_LIMIT') return new GpenLabError('E_ARGUMENT', 'The multipart request has more than one file part', 'Send one image per request.', { input: 'body' });
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT') return new GpenLabError('E_ARGUMENT', 'The multipart request has too many fields', 'Send the image and at most the options alpha, format and save_faces.', { input: 'body' });
  if (code === 'FST_REQ_FILE_TOO_LARGE' || (e as { statusCode?: number }).statusCode === 413) {
    return new GpenLabError('E_BODY_TOO_LARGE', `The uploaded file is over the limit of ${limit} bytes`, 'Send a smaller image (the service\'s --body-limit-mb).', { input: 'body' });
  }
  return new GpenLabError('E_ARGUMENT', `The multipart body cannot be read: ${said}`, 'Send a well-formed multipart/form-data body with its boundary, or the image as the raw body.', { input: 'body', framework: code || null });
}

export async function startService(o: ServeOptions): Promise<Service> {
  const maxWaitMs = o.maxWaitMs ?? 10;
  const maxQueue = o.maxQueue ?? 64;
  const timeoutMs = o.timeoutMs ?? 60_000;
  if (o.maxInflightPixels !== undefined && !(Number.isFinite(o.maxInflightPixels) && o.maxInflightPixels >= 1)) throw badArgument('maxInflightPixels', 'a positive number of pixels', o.maxInflightPixels);
  const pixelBudget = o.maxInflightPixels ?? Math.max(o.maxPixels ?? DEFAULT_MAX_PIXELS, Math.floor(os.totalmem() / 80));
  let pixelsInUse = 0;
  // images in the pipeline at once (decode to encode); the others wait without work of their own, so the event loop
  // holds few continuations and /healthz is answered between them
  const slots = new Slots(o.pipelineSlots ?? Math.max(2, os.availableParallelism()));
  const synthetic = o.model.type === 'synthetic';
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const m = {
    latency: new client.Histogram({ name: 'gpen_request_duration_seconds', help: 'Request latency by route and status', labelNames: ['route', 'status'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] }),
    batch: new client.Histogram({ name: 'gpen_batch_size', help: 'Faces per inference', buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [registry] }),
    batchRequests: new client.Histogram({ name: 'gpen_batch_requests', help: 'Requests whose faces shared one inference', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [registry] }),
    batchSeconds: new client.Histogram({ name: 'gpen_batch_inference_seconds', help: 'Time of one batched inference', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
    queue: new client.Gauge({ name: 'gpen_queue_depth', help: 'Restore requests admitted and not finished', registers: [registry] }),
    waitingFaces: new client.Gauge({ name: 'gpen_batch_waiting_faces', help: 'Faces waiting for a batch', registers: [registry] }),
    errors: new client.Counter({ name: 'gpen_errors_total', help: 'Failed requests by error code', labelNames: ['code'], registers: [registry] }),
    ready: new client.Gauge({ name: 'gpen_ready', help: '1 once the model is loaded and warmed up', registers: [registry] }),
  };

  const app = Fastify({
    logger: o.logLevel === false ? false : { level: o.logLevel ?? 'info' },
    bodyLimit: o.bodyLimit ?? 32 * 2 ** 20,
    return503OnClosing: true,
  });
  // every body but multipart is the image itself, as bytes, whatever its Content-Type says (no JSON or text parsing)
  app.removeAllContentTypeParsers();
  await app.register(multipart, { limits: { fileSize: o.bodyLimit ?? 32 * 2 ** 20, files: 1, fields: 10 } });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  let restorer: Restorer | null = null;
  let batcher: FaceBatcher | null = null;
  let loadError: unknown = null;
  let inflight = 0;
  const latencies: number[] = [];

  const sendError = (reply: FastifyReply, e: unknown, route: string, t0: number) => {
    const err = isGpenLabError(e) ? e : new GpenLabError('E_INTERNAL', errorMessage(e), 'Report it with the service log.');
    const status = STATUS[err.code] ?? 500;
    m.errors.inc({ code: err.code });
    m.latency.observe({ route, status: String(status) }, (Date.now() - t0) / 1000);
    if (status === 429 || status === 503) {
      const avg = latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : 1000;
      void reply.header('Retry-After', String(Math.max(1, Math.ceil(status === 503 ? 5 : (avg * Math.max(1, inflight)) / maxQueue / 1000))));
    }
    return reply.code(status).send({ error: { code: err.code, message: err.message, fix: err.fix }, ...(synthetic ? { synthetic: true } : {}) });
  };

  // the framework's own errors (a body over the limit, a bad header) and unknown routes in the project's shape
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    const coded = isGpenLabError(err) ? err
      : status === 413 ? new GpenLabError('E_BODY_TOO_LARGE', `The request body is over the limit: ${err.message}`, 'Send a smaller image (the service\'s --body-limit-mb).', { input: 'body' })
        : status < 500 ? new GpenLabError('E_ARGUMENT', `The request could not be read: ${err.message}`, 'Send the image as the raw body or as one multipart file.', { input: 'body', framework: err.code })
          : err;
    return sendError(reply, coded, req.routeOptions.url ?? req.url, Date.now());
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new GpenLabError('E_NOT_FOUND', `No route ${req.method} ${req.url}`,
    'The service answers POST /v1/restore, GET /healthz, /readyz, /v1/doctor and /metrics.', { input: req.url }), 'not-found', Date.now()));

  app.get('/healthz', async () => ({ status: 'ok', pid: process.pid, uptime_s: process.uptime(), ...(synthetic ? { synthetic: true } : {}) }));
  app.get('/readyz', async (_req, reply) => {
    if (restorer && batcher) return { status: 'ready', model: restorer.info, provider: restorer.choice.provider, route: restorer.choice, why: describeChoice(restorer.choice), synthetic };
    return reply.code(503).header('Retry-After', '5').send({ status: loadError ? 'failed' : 'loading', ...(loadError ? { error: errorMessage(loadError) } : {}) });
  });
  app.get('/v1/doctor', async (req: FastifyRequest<{ Querystring: { probe?: string } }>) => runDoctor({ probe: req.query.probe === '1' || req.query.probe === 'true' }));
  app.get('/metrics', async (_req, reply) => {
    m.queue.set(inflight);
    m.waitingFaces.set(batcher?.waitingFaces ?? 0);
    return reply.header('Content-Type', registry.contentType).send(await registry.metrics());
  });

  app.post('/v1/restore', async (req, reply) => {
    const t0 = Date.now();
    const route = '/v1/restore';
    if (!restorer || !batcher) {
      return sendError(reply, new GpenLabError('E_NOT_READY', loadError ? `The model failed to load: ${errorMessage(loadError)}` : 'The model is still loading', loadError ? 'Check the service log and its --model.' : 'Retry after the time in Retry-After; GET /readyz says when it is ready.'), route, t0);
    }
    if (inflight >= maxQueue) {
      return sendError(reply, new GpenLabError('E_BUSY', `The queue is full (${inflight} requests in progress, --max-queue ${maxQueue})`, 'Retry after the time in Retry-After.'), route, t0);
    }
    inflight++;
    let timer: NodeJS.Timeout | undefined;
    try {
      let body: Buffer;
      let name = 'upload';
      const fields: Record<string, unknown> = { ...(req.query as Record<string, unknown>) };
      if (req.isMultipart()) {
        let file: Buffer | null = null;
        try {
          for await (const part of req.parts()) {
            if (part.type === 'file') {
              file = await part.toBuffer();
              name = part.filename || name;
            } else fields[part.fieldname] = part.value;
          }
        } catch (e) {
          throw multipartError(e, o.bodyLimit ?? 32 * 2 ** 20);
        }
        if (!file) throw new GpenLabError('E_ARGUMENT', 'The multipart request has no file part', 'Send the image as a file field (any name), or as the raw body.', { input: 'body' });
        body = file;
      } else {
        body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      }
      const opts = parseOptions(fields);
      if (body.length === 0) throw new GpenLabError('E_FORMAT_UNKNOWN', 'The request has no image: the body is empty', 'Send the image bytes as the body (or multipart).', { input: 'body' });
      if (!sniffImageFormat(body)) throw new GpenLabError('E_FORMAT_UNKNOWN', `The body is not an image (${body.length} bytes; expected JPEG, PNG, WebP, TIFF or GIF)`, 'Send a JPEG, PNG, WebP, TIFF or GIF.', { input: 'body' });
      // admitted by decoded pixels, not by count: the header says how many this image will hold
      const size = await imageSize(body);
      const pixels = size ? size.width * size.height : 0;
      if (pixels > 0 && pixels <= (o.maxPixels ?? DEFAULT_MAX_PIXELS) && pixelsInUse + pixels > pixelBudget) {
        const mp = (v: number) => (v / 1e6).toFixed(v < 1e7 ? 2 : 0);
        throw new GpenLabError('E_BUSY', `The service holds ${mp(pixelsInUse)} MP of images in progress; this one's ${mp(pixels)} MP would pass its budget of ${mp(pixelBudget)} MP`,
          'Retry after the time in Retry-After.', { input: 'body', pixels, budget: pixelBudget });
      }
      pixelsInUse += pixels;
      // the work stops at its next stage once its request timed out or its client went away; its pixels are given
      // back when it has stopped, so the budget bounds what is really held
      let cancelled: GpenLabError | null = null;
      const gone = () => { cancelled ??= new GpenLabError('E_TIMEOUT', 'The client went away before its image was restored', 'Nothing to do: the work was dropped.'); };
      reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone(); });
      const work = (async () => {
        await slots.take();
        try {
          if (cancelled) throw cancelled;
          const img = await decodeImageBuffer(body, name, o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {});
          return await restorer!.restoreDecoded(img, name, opts, (x, n) => batcher!.infer(x, n), () => cancelled);
        } finally {
          slots.give();
        }
      })();
      void work.then(() => undefined, () => undefined).finally(() => { pixelsInUse -= pixels; });
      const timeout = new Promise<never>((_r, reject) => {
        timer = setTimeout(() => {
          cancelled ??= new GpenLabError('E_TIMEOUT', `The request took longer than ${timeoutMs} ms`, 'Send a smaller image or retry when the service is less busy.');
          reject(cancelled);
        }, timeoutMs);
      });
      work.catch(() => undefined); // a late failure after a timeout is not unhandled
      const { result, images } = await Promise.race([work, timeout]);
      latencies.push(Date.now() - t0);
      if (latencies.length > 100) latencies.shift();
      m.latency.observe({ route, status: '200' }, (Date.now() - t0) / 1000);
      void reply.header('X-Gpen-Faces', String(result.faces.length)).header('X-Gpen-Provider', (result.provider.ran ?? [result.provider.asked]).join(','))
        .header('Server-Timing', Object.entries(result.stages_ms).map(([k, v]) => `${k};dur=${v.toFixed(1)}`).join(', '));
      if (synthetic) void reply.header('X-Gpen-Synthetic', 'true');
      if ((req.headers.accept ?? '').includes('application/json')) {
        return reply.send(jsonResult(result, images, opts.ext, synthetic));
      }
      return reply.type(MIME[opts.ext]).send(images[0][1]);
    } catch (e) {
      return sendError(reply, e, route, t0);
    } finally {
      clearTimeout(timer);
      inflight--;
    }
  });

  const port = o.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw badArgument('port', 'an integer between 0 and 65535', port);
  try {
    await app.listen({ host: o.host ?? '127.0.0.1', port });
  } catch (e) {
    await app.close().catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new GpenLabError('E_ARGUMENT', `Port ${port} on ${o.host ?? '127.0.0.1'} is already in use`, 'Pass another --port (0: any free one), or stop what listens there.', { input: '--port', port });
    if (code === 'EACCES') throw new GpenLabError('E_ARGUMENT', `Port ${port} needs privileges this process does not have`, 'Pass a --port above 1023.', { input: '--port', port });
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new GpenLabError('E_ARGUMENT', `${o.host} is not an address of this machine`, 'Pass --host 127.0.0.1, 0.0.0.0 or one of this machine\'s addresses.', { input: '--host' });
    throw e;
  }
  const addr = app.server.address();
  const url = typeof addr === 'object' && addr ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : String(addr);

  const ready = (async () => {
    try {
      // each candidate's model prepared off the event loop (/healthz answers); a service takes the warm set
      const r = await Restorer.create({
        model: o.model, prepare: prepareInWorker, provider: o.provider ?? 'auto', route: o.route ?? 'fast', workload: 'service',
        ...(o.precision ? { precision: o.precision } : {}), ...(o.maxBatch !== undefined ? { batch: o.maxBatch } : {}), outDir: os.tmpdir(), write: false,
        ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
        // one core kept for the event loop: /healthz and admission answer while inference holds the others
        session: { intraOpNumThreads: Math.max(1, os.availableParallelism() - 1), ...(o.cudaOptions ? { cudaOptions: o.cudaOptions } : {}) },
      });
      const maxBatch = r.choice.batch;
      const per = 3 * r.size * r.size;
      await r.inferCrops(new Float32Array(per), 1); // warm-up: the first run pays for allocation and algorithm search
      batcher = new FaceBatcher({ maxBatch, maxWaitMs, perFace: per, run: (x, n) => r.inferCrops(x, n), onBatch: (faces, requests, ms) => { m.batch.observe(faces); m.batchRequests.observe(requests); m.batchSeconds.observe(ms / 1000); } });
      restorer = r;
      m.ready.set(1);
      app.log.info({ event: 'ready', model: r.label, provider: r.choice.provider, route: r.choice, maxBatch, maxWaitMs, maxQueue, synthetic }, `model loaded and warmed up: ${describeChoice(r.choice)}`);
    } catch (e) {
      loadError = e;
      app.log.error({ event: 'load-failed', error: errorMessage(e) }, 'the model failed to load');
      throw e;
    }
  })();
  ready.catch(() => undefined);

  return {
    app, ready, metrics: registry, url,
    async close() {
      // stops accepting and waits for the requests in progress; keep-alive connections that fall idle after their
      // last response are closed as they do (the server would otherwise wait out their keep-alive timeout)
      const idle = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(idle);
      }
      await ready.catch(() => undefined);
      await restorer?.release();
    },
  };
}

function jsonResult(r: RestoreResult, images: [string, Buffer][], ext: OutputExt, synthetic: boolean): Record<string, unknown> {
  return {
    faces: r.faces, stages_ms: r.stages_ms, provider: r.provider, model: r.model, warnings: r.warnings, synthetic,
    image: { format: ext.slice(1), bytes: images[0][1].length, base64: images[0][1].toString('base64') },
    comparison: { format: ext.slice(1), base64: images[1][1].toString('base64') },
    face_images: images.slice(2).map(([f, b]) => ({ name: path.basename(f), base64: b.toString('base64') })),
  };
}
