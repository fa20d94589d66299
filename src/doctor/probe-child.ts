// The doctor's try-load, run in a child process (a provider that crashes must not take the doctor down): creates a
// session for a tiny convolution graph on the provider given as argv[2], runs it once, and prints stage lines and one
// JSON result on stdout. ONNX Runtime's own log (the library it failed to load) goes to stderr.
import { performance } from 'node:perf_hooks';

const provider = process.argv[2] ?? 'cpu';
const t0 = performance.now();
const stage = (s: string) => process.stdout.write(`STAGE ${s}\n`);
const done = (r: Record<string, unknown>) =>
  process.stdout.write(`RESULT ${JSON.stringify({ provider, asked: provider, ms: performance.now() - t0, ...r })}\n`);

let reached = 'load-runtime';
try {
  stage(reached);
  const { ModelSession } = await import('../runtime/session.js');
  const { parseProvider } = await import('../runtime/providers.js');
  const { GraphBuilder, TensorType } = await import('../onnx/builder.js');
  // a 1x1 convolution with identity weights: output = input, and it needs cuDNN on the CUDA provider, as GPEN does
  const g = new GraphBuilder();
  const w = g.initializer('w', [3, 3, 1, 1], Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]));
  const [y] = g.node('Conv', ['input', w], {}, 1, 'conv');
  g.rename(y, 'output');
  const graph = g.encode({
    name: 'doctor_probe',
    opset: 17,
    inputs: [{ name: 'input', elemType: TensorType.FLOAT, dims: [1, 3, 8, 8] }],
    outputs: [{ name: 'output', elemType: TensorType.FLOAT, dims: [1, 3, 8, 8] }],
    metadata: {},
    docString: 'gpen-lab doctor probe: 1x1 identity convolution',
  });
  const p = parseProvider(provider);
  reached = 'create-session';
  stage(reached);
  const session = await ModelSession.create(graph, { provider: p, label: `doctor probe (1x1 convolution on ${p})` });
  reached = 'run';
  stage(reached);
  const x = Float32Array.from({ length: 3 * 8 * 8 }, (_, i) => (i % 17) / 17);
  const out = await session.run(x, [1, 3, 8, 8]);
  const same = out.data.every((v, i) => Math.abs(v - x[i]) < 1e-6);
  const placement = session.placement;
  await session.release();
  reached = 'done';
  stage(reached);
  done({
    ok: same && !placement?.mismatch,
    stage: reached,
    ran: placement?.ran ?? null,
    nodesByProvider: placement?.nodesByProvider ?? null,
    error: same
      ? placement?.mismatch
        ? `asked for ${p} but nodes ran on ${placement.ran.join(', ')}`
        : null
      : 'the identity graph returned other values',
  });
} catch (e) {
  const err = e as { message?: string; code?: string; fix?: string };
  done({
    ok: false,
    stage: reached,
    ran: null,
    error: err?.message ?? String(e),
    code: err?.code ?? null,
    fix: err?.fix ?? null,
  });
  process.exitCode = 1;
}
