// What decides a doctor run, printed first: the provider restore's `auto` chooses here and whether it runs, the one
// cause that stops the providers before it (no GPU, or the first failure of the first one), and the exit code. Pure:
// reports in, decision out, so that tests fake a GPU, a driver and a provider's state.
import type { Provider } from '../runtime/providers.js';
import { PROVIDER_SPECS } from '../runtime/providers.js';
import type { RouteChoice, Skipped } from '../runtime/routes.js';
import {
  AUTO_ORDER,
  combination,
  cudaSetFor,
  defaultBatch,
  defaultPrecision,
  describeChoice,
  detectorPlacement,
  fastCudaOptions,
} from '../runtime/routes.js';
import type { GpuReport, ProviderReport } from './types.js';

/** Exit codes: 0 when what was asked runs; 3 when a provider that counts does not (the code of `doctor` since 1). */
export const EXIT_OK = 0;
export const EXIT_PROVIDER_FAILS = 3;

export interface RootCause {
  /** "no-gpu", or the id of the first failing finding of the first provider that counts. */
  id: string;
  message: string;
  fix: string | null;
  /** The provider it stops; null for no GPU, which stops every GPU provider. */
  provider: Provider | null;
  /** What follows from it, folded under it in the text: each stopped provider and the ids of its failing findings. */
  consequences: { provider: Provider; findings: string[] }[];
}

export interface Decision {
  /** What the exit code answers: 'auto' (plain `doctor`: the provider auto chooses) or the providers named. */
  asked: 'auto' | Provider[];
  /** The provider restore's auto chooses here (the first of AUTO_ORDER that runs); null when none does. */
  auto: Provider | null;
  /** Whether it runs: try-loaded (or, with --no-probe, its checks pass); null when this run did not check it. */
  works: boolean | null;
  /** restore's choice line for one image of a model gpen-lab builds, with why each earlier candidate is skipped. */
  why: string;
  skipped: Skipped[];
  /** No NVIDIA GPU is visible (no driver answered, or it lists no device). */
  noGpu: boolean;
  rootCause: RootCause | null;
  /** Providers that fail for want of a GPU: folded under it in the text, never with install lines. */
  stopped: Provider[];
  /** Those a plain `doctor` does not count (all of `stopped`); none when providers are named. */
  excused: Provider[];
  /** The providers that count and do not run. */
  failing: Provider[];
  exitCode: number;
}

export interface DecisionInput {
  gpu: GpuReport;
  providers: ProviderReport[];
  asked: 'auto' | Provider[];
  /** restore's WebGPU gate: null when a hardware adapter is found, else why not; asked only when auto reaches WebGPU. */
  webgpuAdapter: () => string | null;
  /** Provider files missing beside libonnxruntime.so.1, for providers this run did not check. */
  missingFiles: (p: Provider) => string[];
  ortBinDir: string;
  inContainer: boolean;
}

const needsNvidia = (p: Provider): boolean => PROVIDER_SPECS[p].gpu && p !== 'webgpu';

/** The words restore's auto uses for a provider whose files are absent (face/choose.ts availableNow). */
export function notInstalled(missing: string[], dir: string): string {
  return `its provider is not installed (${missing.join(', ')} missing from ${dir}): run \`gpen-lab setup cuda\``;
}

export function noGpuMessage(gpu: GpuReport): string {
  return gpu.source === 'none'
    ? 'no NVIDIA GPU or driver is visible'
    : `the NVIDIA driver answers (${gpu.source}) but lists no GPU`;
}

/** restore's console line for the provider auto settles on (one image, a model gpen-lab builds: .pth or synthetic). */
export function choiceLine(provider: Provider, skipped: Skipped[]): string {
  const workload = 'single';
  const precision = defaultPrecision(provider);
  const c = combination(provider, 'fast', precision);
  const capi = c.binding === 'capi';
  const choice: RouteChoice = {
    asked: { provider: 'auto', route: 'fast', precision: null },
    provider,
    route: 'fast',
    binding: c.binding,
    precision,
    workload,
    set: capi ? cudaSetFor(workload) : null,
    options: capi ? fastCudaOptions(workload, true) : null,
    batch: defaultBatch(provider, c.binding, workload),
    detector: detectorPlacement(provider, c.binding, workload),
    skipped,
    note: c.note,
  };
  return describeChoice(choice);
}

function firstFailure(r: ProviderReport): { id: string; message: string; fix: string | null } {
  const f = r.findings.find((x) => x.verdict === 'fail');
  if (f) return f;
  const said = r.probe?.error?.split('\n')[0] ?? 'its checks failed';
  return {
    id: 'probe-failed',
    message: `the try-load failed${r.probe ? ` at ${r.probe.stage}` : ''}: ${said}`,
    fix: "gpen-lab doctor --json (the probe's stderr tail)",
  };
}

export function decide(i: DecisionInput): Decision {
  const noGpu = i.gpu.devices.length === 0;
  const report = (p: Provider) => i.providers.find((r) => r.provider === p);
  let gate: { reason: string | null } | null = null;
  const adapter = (): string | null => (gate ??= { reason: i.webgpuAdapter() }).reason;
  // failing because there is no GPU: NVIDIA's providers without one, and WebGPU without a hardware adapter
  const byNoGpu = (r: ProviderReport): boolean =>
    noGpu && r.verdict === 'fail' && PROVIDER_SPECS[r.provider].gpu && (r.provider !== 'webgpu' || adapter() !== null);

  // auto's candidates in its order, each as restore would find it: runs, skipped (why), or not checked in this run
  const skipped: Skipped[] = [];
  let auto: Provider | null = null;
  let works: boolean | null = false;
  for (const p of AUTO_ORDER) {
    const r = report(p);
    let reason: string | null = null;
    let runs: boolean | null = null;
    if (p === 'webgpu' && adapter() !== null) reason = adapter();
    else if (r && r.verdict === 'ok') runs = true;
    else if (r)
      reason = byNoGpu(r)
        ? noGpuMessage(i.gpu)
        : p === 'cuda' && r.files.missing.length
          ? notInstalled(r.files.missing, r.files.dir)
          : firstFailure(r).message;
    else if (needsNvidia(p) && noGpu) reason = noGpuMessage(i.gpu);
    else if (i.missingFiles(p).length) reason = notInstalled(i.missingFiles(p), i.ortBinDir);
    if (reason !== null) {
      skipped.push({ provider: p, reason });
      continue;
    }
    auto = p;
    works = runs;
    break;
  }
  const why = auto
    ? choiceLine(auto, skipped)
    : `no provider runs: ${skipped.map((s) => `${s.provider} skipped: ${s.reason}`).join('; ')}`;

  const stopped = i.providers.filter(byNoGpu);
  const excused = i.asked === 'auto' ? stopped.map((r) => r.provider) : [];
  const counted =
    i.asked === 'auto' ? i.providers : i.providers.filter((r) => (i.asked as Provider[]).includes(r.provider));
  const failing = counted.filter((r) => r.verdict !== 'ok' && !excused.includes(r.provider)).map((r) => r.provider);
  const exitCode = failing.length === 0 && (i.asked !== 'auto' || works === true) ? EXIT_OK : EXIT_PROVIDER_FAILS;

  // a provider that fails with a GPU present (or the CPU) decides before the absence of a GPU explains the rest
  const order = (p: Provider) => (AUTO_ORDER.includes(p) ? AUTO_ORDER.indexOf(p) : AUTO_ORDER.length);
  const other = failing.filter((p) => !stopped.some((r) => r.provider === p)).sort((a, b) => order(a) - order(b));
  let rootCause: RootCause | null = null;
  if (other.length) {
    const f = firstFailure(report(other[0])!);
    rootCause = { id: f.id, message: f.message, fix: f.fix, provider: other[0], consequences: [] };
  } else if (noGpu && (stopped.length > 0 || skipped.some((s) => needsNvidia(s.provider)))) {
    rootCause = {
      id: 'no-gpu',
      message: noGpuMessage(i.gpu),
      provider: null,
      fix: i.inContainer
        ? 'on a host with an NVIDIA GPU, start the container with --gpus all (NVIDIA Container Toolkit)'
        : null,
      consequences: stopped.map((r) => ({
        provider: r.provider,
        findings: r.findings.filter((f) => f.verdict !== 'ok').map((f) => f.id),
      })),
    };
  }
  return {
    asked: i.asked,
    auto,
    works,
    why,
    skipped,
    noGpu,
    rootCause,
    stopped: stopped.map((r) => r.provider),
    excused,
    failing,
    exitCode,
  };
}
