// The service's Prometheus metrics, in a registry of each service's own beside the process's default metrics.
import client from 'prom-client';

export function serviceMetrics() {
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
    deviceInFlight: new client.Gauge({
      name: 'gpen_device_requests_in_flight',
      help: 'Restore requests on each GPU now (serve --devices: one engine a GPU)',
      labelNames: ['device'],
      registers: [registry],
    }),
    deviceDone: new client.Gauge({
      name: 'gpen_device_requests_done',
      help: 'Restore requests each GPU has finished',
      labelNames: ['device'],
      registers: [registry],
    }),
    deviceBatchSeconds: new client.Histogram({
      name: 'gpen_device_batch_inference_seconds',
      help: 'Time of one batched inference, by GPU',
      labelNames: ['device'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    ready: new client.Gauge({
      name: 'gpen_ready',
      help: '1 once the model is loaded and warmed up',
      registers: [registry],
    }),
  };
  return { registry, m };
}

export type ServiceMetrics = ReturnType<typeof serviceMetrics>['m'];
