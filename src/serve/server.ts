// `gpen-lab serve`: the restoration pipeline behind HTTP (fastify). This thread keeps only HTTP: parsing, body
// limits, format and size checks, admission by decoded pixels and by count (429), per-request timeouts (504), coded
// errors with the right status (413, 415, 422), /healthz, /readyz, Prometheus metrics, JSON logs, and a graceful
// shutdown that finishes what was accepted. The pipeline (decode to encode, faces of concurrent requests batched
// together) runs on the engine thread (engine.ts), so that its synchronous work never holds this event loop.
import os from 'node:os';
import multipart from '@fastify/multipart';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import client from 'prom-client';
import { runDoctor } from '../doctor/index.js';
import { GpenLabError, badArgument, errorMessage, isGpenLabError, toGpenLabError } from '../errors.js';
import { DEFAULT_MAX_PIXELS, imageSize, sniffImageFormat } from '../io/image.js';
import type { Precision } from '../model/gpen-graph.js';
import type { ModelSpec } from '../model/registry.js';
import type { ProviderChoice, Route } from '../runtime/routes.js';
import { describeChoice } from '../runtime/routes.js';
import { defaultPixelBudget } from './budget.js';
import { Engine } from './engine.js';
import { MIME, STATUS, jsonResult, multipartError, parseOptions } from './http.js';

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
   * Decoded pixels the requests in progress may hold together (each image counts width x height from its header,
   * from admission until the engine thread is done with it; default budget.ts defaultPixelBudget: a quarter of the
   * machine's memory at the bytes a pixel the flood measured, and at least one image of maxPixels). An image beyond
   * what is left waits for none: 429 with Retry-After.
   */
  maxInflightPixels?: number;
  /** Images in the pipeline at once (default: the cores, at least 2); the rest of the admitted wait for a slot. */
  pipelineSlots?: number;
  /** pino level, or false for no log. */
  logLevel?: string | false;
  /** CUDA provider options (ONNX Runtime's names): the GPEN session goes through the C API route. */
  cudaOptions?: Record<string, string>;
  /** For tests (protocol.ts EngineConfig.hold): the engine thread blocks after acknowledging each job while hold[0] is 0. */
  hold?: Int32Array;
  /** For tests (protocol.ts EngineConfig.holdLoad): the model's load waits while holdLoad[0] is 0. */
  holdLoad?: Int32Array;
}

export interface Service {
  app: FastifyInstance;
  /** Resolves once the model is loaded and warmed up (rejects if loading failed). */
  ready: Promise<void>;
  metrics: client.Registry;
  url: string;
  /** The engine thread's handle: its state, and events per job (started, cancel, settled). */
  engine: Engine;
  close(): Promise<void>;
}

export async function startService(o: ServeOptions): Promise<Service> {
  const maxWaitMs = o.maxWaitMs ?? 10;
  const maxQueue = o.maxQueue ?? 64;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const bodyLimit = o.bodyLimit ?? 32 * 2 ** 20;
  if (o.maxInflightPixels !== undefined && !(Number.isFinite(o.maxInflightPixels) && o.maxInflightPixels >= 1))
    throw badArgument('maxInflightPixels', 'a positive number of pixels', o.maxInflightPixels);
  const pixelBudget = o.maxInflightPixels ?? defaultPixelBudget(o.maxPixels ?? DEFAULT_MAX_PIXELS);
  let pixelsInUse = 0;
  const synthetic = o.model.type === 'synthetic';
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const m = {
    latency: new client.Histogram({
      name: 'gpen_request_duration_seconds',
      help: 'Request latency by route and status',
      labelNames: ['route', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    batch: new client.Histogram({
      name: 'gpen_batch_size',
      help: 'Faces per inference',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
    batchRequests: new client.Histogram({
      name: 'gpen_batch_requests',
      help: 'Requests whose faces shared one inference',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    batchSeconds: new client.Histogram({
      name: 'gpen_batch_inference_seconds',
      help: 'Time of one batched inference',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    queue: new client.Gauge({
      name: 'gpen_queue_depth',
      help: 'Restore requests admitted and not finished',
      registers: [registry],
    }),
    waitingFaces: new client.Gauge({
      name: 'gpen_batch_waiting_faces',
      help: 'Faces waiting for a batch',
      registers: [registry],
    }),
    errors: new client.Counter({
      name: 'gpen_errors_total',
      help: 'Failed requests by error code',
      labelNames: ['code'],
      registers: [registry],
    }),
    ready: new client.Gauge({
      name: 'gpen_ready',
      help: '1 once the model is loaded and warmed up',
      registers: [registry],
    }),
  };

  const app = Fastify({
    logger: o.logLevel === false ? false : { level: o.logLevel ?? 'info' },
    bodyLimit,
    return503OnClosing: true,
  });
  // every body but multipart is the image itself, as bytes, whatever its Content-Type says (no JSON or text parsing)
  app.removeAllContentTypeParsers();
  await app.register(multipart, { limits: { fileSize: bodyLimit, files: 1, fields: 10 } });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // started once the port is taken; null only before that
  let engine: Engine | null = null;
  let inflight = 0;
  const latencies: number[] = [];

  const sendError = (reply: FastifyReply, e: unknown, route: string, t0: number) => {
    const err = toGpenLabError(e);
    const status = STATUS[err.code] ?? 500;
    m.errors.inc({ code: err.code });
    m.latency.observe({ route, status: String(status) }, (Date.now() - t0) / 1000);
    if (status === 429 || status === 503) {
      const avg = latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : 1000;
      void reply.header(
        'Retry-After',
        String(Math.max(1, Math.ceil(status === 503 ? 5 : (avg * Math.max(1, inflight)) / maxQueue / 1000))),
      );
    }
    return reply.code(status).send({
      error: { code: err.code, message: err.message, fix: err.fix },
      ...(synthetic ? { synthetic: true } : {}),
    });
  };

  // the framework's own errors (a body over the limit, a bad header) and unknown routes in the project's shape
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    const coded = isGpenLabError(err)
      ? err
      : status === 413
        ? new GpenLabError(
            'E_BODY_TOO_LARGE',
            `The request body is over the limit: ${err.message}`,
            "Send a smaller image (the service's --body-limit-mb).",
            { input: 'body' },
          )
        : status < 500
          ? new GpenLabError(
              'E_ARGUMENT',
              `The request could not be read: ${err.message}`,
              'Send the image as the raw body or as one multipart file.',
              { input: 'body', framework: err.code },
            )
          : err;
    return sendError(reply, coded, req.routeOptions.url ?? req.url, Date.now());
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      new GpenLabError(
        'E_NOT_FOUND',
        `No route ${req.method} ${req.url}`,
        'The service answers POST /v1/restore, GET /healthz, /readyz, /v1/doctor and /metrics.',
        { input: req.url },
      ),
      'not-found',
      Date.now(),
    ),
  );

  // answered here from this thread's own state: never waits on the engine thread
  app.get('/healthz', async () => ({
    status: 'ok',
    pid: process.pid,
    uptime_s: process.uptime(),
    ...(synthetic ? { synthetic: true } : {}),
  }));
  app.get('/readyz', async (_req, reply) => {
    const r = engine?.state === 'ready' ? engine.loaded : null;
    if (r)
      return {
        status: 'ready',
        model: r.info,
        provider: r.choice.provider,
        route: r.choice,
        why: describeChoice(r.choice),
        synthetic,
      };
    const failure = engine?.failure ?? null;
    return reply
      .code(503)
      .header('Retry-After', '5')
      .send({ status: failure ? 'failed' : 'loading', ...(failure ? { error: failure.message } : {}) });
  });
  app.get('/v1/doctor', async (req: FastifyRequest<{ Querystring: { probe?: string } }>) =>
    runDoctor({ probe: req.query.probe === '1' || req.query.probe === 'true' }),
  );
  app.get('/metrics', async (_req, reply) => {
    m.queue.set(inflight);
    m.waitingFaces.set(engine?.waitingFaces ?? 0);
    return reply.header('Content-Type', registry.contentType).send(await registry.metrics());
  });

  app.post('/v1/restore', async (req, reply) => {
    const t0 = Date.now();
    const route = '/v1/restore';
    if (!engine || engine.state !== 'ready') {
      const f = engine?.failure ?? null;
      const loadFailed = engine?.state === 'failed';
      return sendError(
        reply,
        new GpenLabError(
          'E_NOT_READY',
          !f ? 'The model is still loading' : loadFailed ? `The model failed to load: ${f.message}` : f.message,
          !f
            ? 'Retry after the time in Retry-After; GET /readyz says when it is ready.'
            : loadFailed
              ? 'Check the service log and its --model.'
              : f.fix,
        ),
        route,
        t0,
      );
    }
    if (inflight >= maxQueue) {
      return sendError(
        reply,
        new GpenLabError(
          'E_BUSY',
          `The queue is full (${inflight} requests in progress, --max-queue ${maxQueue})`,
          'Retry after the time in Retry-After.',
        ),
        route,
        t0,
      );
    }
    const eng = engine;
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
          throw multipartError(e, bodyLimit);
        }
        if (!file)
          throw new GpenLabError(
            'E_ARGUMENT',
            'The multipart request has no file part',
            'Send the image as a file field (any name), or as the raw body.',
            { input: 'body' },
          );
        body = file;
      } else {
        body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      }
      const opts = parseOptions(fields);
      if (body.length === 0)
        throw new GpenLabError(
          'E_FORMAT_UNKNOWN',
          'The request has no image: the body is empty',
          'Send the image bytes as the body (or multipart).',
          { input: 'body' },
        );
      if (!sniffImageFormat(body))
        throw new GpenLabError(
          'E_FORMAT_UNKNOWN',
          `The body is not an image (${body.length} bytes; expected JPEG, PNG, WebP, TIFF or GIF)`,
          'Send a JPEG, PNG, WebP, TIFF or GIF.',
          { input: 'body' },
        );
      // admitted by decoded pixels, not by count: the header says how many this image will hold
      const size = await imageSize(body);
      const pixels = size ? size.width * size.height : 0;
      if (pixels > 0 && pixels <= (o.maxPixels ?? DEFAULT_MAX_PIXELS) && pixelsInUse + pixels > pixelBudget) {
        const mp = (v: number) => (v / 1e6).toFixed(v < 1e7 ? 2 : 0);
        throw new GpenLabError(
          'E_BUSY',
          `The service holds ${mp(pixelsInUse)} MP of images in progress; this one's ${mp(pixels)} MP would pass its budget of ${mp(pixelBudget)} MP`,
          'Retry after the time in Retry-After.',
          { input: 'body', pixels, budget: pixelBudget },
        );
      }
      pixelsInUse += pixels;
      // the body moves to the engine thread; its pixels are given back when that thread is done with the job, not
      // when its request gave up, so the budget bounds what is really held
      const job = eng.run(body, name, opts);
      void job.output
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          pixelsInUse -= pixels;
        });
      // the work stops at its next stage once its request timed out or its client went away
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished)
          eng.cancel(
            job.id,
            new GpenLabError(
              'E_TIMEOUT',
              'The client went away before its image was restored',
              'Nothing to do: the work was dropped.',
            ),
          );
      });
      const timeout = new Promise<never>((_r, reject) => {
        timer = setTimeout(() => {
          const late = new GpenLabError(
            'E_TIMEOUT',
            `The request took longer than ${timeoutMs} ms`,
            'Send a smaller image or retry when the service is less busy.',
          );
          eng.cancel(job.id, late);
          reject(late);
        }, timeoutMs);
      });
      const { result, images } = await Promise.race([job.output, timeout]);
      latencies.push(Date.now() - t0);
      if (latencies.length > 100) latencies.shift();
      m.latency.observe({ route, status: '200' }, (Date.now() - t0) / 1000);
      void reply
        .header('X-Gpen-Faces', String(result.faces.length))
        .header('X-Gpen-Provider', (result.provider.ran ?? [result.provider.asked]).join(','))
        .header(
          'Server-Timing',
          Object.entries(result.stages_ms)
            .map(([k, v]) => `${k};dur=${v.toFixed(1)}`)
            .join(', '),
        );
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
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw badArgument('port', 'an integer between 0 and 65535', port);
  try {
    await app.listen({ host: o.host ?? '127.0.0.1', port });
  } catch (e) {
    await app.close().catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new GpenLabError(
        'E_ARGUMENT',
        `Port ${port} on ${o.host ?? '127.0.0.1'} is already in use`,
        'Pass another --port (0: any free one), or stop what listens there.',
        { input: '--port', port },
      );
    if (code === 'EACCES')
      throw new GpenLabError(
        'E_ARGUMENT',
        `Port ${port} needs privileges this process does not have`,
        'Pass a --port above 1023.',
        { input: '--port', port },
      );
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw new GpenLabError(
        'E_ARGUMENT',
        `${o.host} is not an address of this machine`,
        "Pass --host 127.0.0.1, 0.0.0.0 or one of this machine's addresses.",
        { input: '--host' },
      );
    throw e;
  }
  const addr = app.server.address();
  const url =
    typeof addr === 'object' && addr
      ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
      : String(addr);

  // the model is loaded, warmed up and run on the engine thread; /healthz answers throughout
  const eng = new Engine(
    {
      model: o.model,
      provider: o.provider ?? 'auto',
      route: o.route ?? 'fast',
      ...(o.precision ? { precision: o.precision } : {}),
      ...(o.maxBatch !== undefined ? { maxBatch: o.maxBatch } : {}),
      maxWaitMs,
      ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
      pipelineSlots: o.pipelineSlots ?? Math.max(2, os.availableParallelism()),
      ...(o.cudaOptions ? { cudaOptions: o.cudaOptions } : {}),
      ...(o.hold ? { hold: o.hold } : {}),
      ...(o.holdLoad ? { holdLoad: o.holdLoad } : {}),
    },
    (e) => {
      m.ready.set(0);
      app.log.error(
        { event: 'engine-crashed', error: e.message },
        'the engine thread stopped: restore answers 503 until the service is restarted',
      );
    },
  );
  engine = eng;
  eng.on('batch', (faces, requests, ms) => {
    m.batch.observe(faces);
    m.batchRequests.observe(requests);
    m.batchSeconds.observe(ms / 1000);
  });
  const ready = eng.ready.then(
    (r) => {
      m.ready.set(1);
      app.log.info(
        {
          event: 'ready',
          model: r.label,
          provider: r.choice.provider,
          route: r.choice,
          maxBatch: r.maxBatch,
          maxWaitMs,
          maxQueue,
          pixelBudget,
          synthetic,
        },
        `model loaded and warmed up: ${describeChoice(r.choice)}`,
      );
    },
    (e: unknown) => {
      app.log.error({ event: 'load-failed', error: errorMessage(e) }, 'the model failed to load');
      throw e;
    },
  );
  ready.catch(() => undefined);

  return {
    app,
    ready,
    metrics: registry,
    url,
    engine: eng,
    async close() {
      // stops accepting and waits for the requests in progress; keep-alive connections that fall idle after their
      // last response are closed as they do (the server would otherwise wait out their keep-alive timeout)
      const idle = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(idle);
        // then the engine thread finishes what it still has (jobs whose requests timed out) and ends
        await eng.close();
      }
    },
  };
}
