// The closed set of execution providers, written once: CLI choices, validation, docs and the doctor derive from it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../errors.js';

export const PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'webgpu'] as const;
export type Provider = (typeof PROVIDERS)[number];

export interface ProviderSpec {
  /** Name onnxruntime-node takes in executionProviders. */
  ort: string;
  /** Name ONNX Runtime reports for the nodes it placed (profiling's "provider"). */
  epName: string;
  gpu: boolean;
  /** Files that must sit next to libonnxruntime.so.1 for the provider to load (Linux). */
  files: string[];
}

export const PROVIDER_SPECS: Record<Provider, ProviderSpec> = {
  cpu: { ort: 'cpu', epName: 'CPUExecutionProvider', gpu: false, files: [] },
  cuda: {
    ort: 'cuda',
    epName: 'CUDAExecutionProvider',
    gpu: true,
    files: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
  },
  tensorrt: {
    ort: 'tensorrt',
    epName: 'TensorrtExecutionProvider',
    gpu: true,
    files: [
      'libonnxruntime_providers_shared.so',
      'libonnxruntime_providers_tensorrt.so',
      'libonnxruntime_providers_cuda.so',
    ],
  },
  webgpu: { ort: 'webgpu', epName: 'WebGpuExecutionProvider', gpu: true, files: [] },
};

const byEpName = new Map(PROVIDERS.map((p) => [PROVIDER_SPECS[p].epName, p] as const));

/** Maps ONNX Runtime's provider name ("CUDAExecutionProvider") back to ours; unknown names are kept as they are. */
export function providerFromEpName(ep: string): Provider | string {
  return byEpName.get(ep) ?? ep;
}

export function isProvider(v: unknown): v is Provider {
  return typeof v === 'string' && (PROVIDERS as readonly string[]).includes(v);
}

export function parseProvider(v: unknown, input = 'provider'): Provider {
  if (isProvider(v)) return v;
  throw new GpenLabError(
    'E_PROVIDER_UNKNOWN',
    `Expected one of ${PROVIDERS.join(', ')} for ${input} but received ${JSON.stringify(v)}`,
    `Use one of ${PROVIDERS.join(', ')}.`,
    { input, option: input, received: v },
  );
}

const require = createRequire(import.meta.url);

export function ortPackageDir(): string {
  return path.dirname(require.resolve('onnxruntime-node/package.json'));
}

export function ortVersion(): string {
  return (require('onnxruntime-node/package.json') as { version: string }).version;
}

/** The folder holding libonnxruntime.so.1 and the binding; provider libraries must sit beside them. */
export function ortBinDir(): string {
  const arch = process.arch;
  const plat = process.platform;
  return path.join(ortPackageDir(), 'bin', 'napi-v6', plat, arch);
}

/** Whether the kernel exposes an NVIDIA GPU to this process (/dev/nvidiactl or /dev/nvidia0; in a container: --gpus). */
export function nvidiaDeviceVisible(): boolean {
  return existsSync('/dev/nvidiactl') || existsSync('/dev/nvidia0');
}

/**
 * Provider files missing from `dir` (default the binding folder, ort1.29's; another build's is its own folder):
 * empty when the provider needs none or all are there.
 */
export function missingProviderFiles(p: Provider, dir = ortBinDir()): string[] {
  if (process.platform !== 'linux') return [];
  return PROVIDER_SPECS[p].files.filter((f) => !existsSync(path.join(dir, f)));
}
