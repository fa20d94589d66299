// Known error texts of ONNX Runtime's GPU providers and CUDA, matched on their stable part (paths and numbers vary),
// each with its cause and a fix to paste. New signatures go here, each with a test on the real message.
import { exportLine } from './libs.js';
import { familyOf, installLine } from './requirements.js';
import type { Finding } from './types.js';

export interface DiagnosisContext {
  provider: string;
  ortBinDir?: string;
  /** Folders holding a copy of a library with the major this build needs, by soname. */
  found?: Record<string, string[]>;
  driverVersion?: string | null;
  cudaDriverVersion?: string | null;
  requiredCudaMajor?: number;
  driverMinimum?: string | null;
  /** Providers the binary knows (for the unsupported-provider message). */
  runtimeProviders?: string[];
  /** The GPU's compute capability, when known. */
  computeCapability?: string | null;
}

export interface Signature {
  id: string;
  pattern: RegExp;
  cause(m: RegExpMatchArray, ctx: DiagnosisContext): string;
  fix(m: RegExpMatchArray, ctx: DiagnosisContext): string;
}

/** The fix for a library the loader cannot find: the folder of a right copy, or where to get one. */
function libraryFix(lib: string, ctx: DiagnosisContext): string {
  const dirs = ctx.found?.[lib] ?? [];
  if (dirs.length) return exportLine(dirs[0]);
  return `install ${installLine(lib, cuda(ctx))}, then export LD_LIBRARY_PATH=<the folder holding ${lib}>:$LD_LIBRARY_PATH`;
}

const cuda = (ctx: DiagnosisContext) => ctx.requiredCudaMajor ?? 13;

export const SIGNATURES: Signature[] = [
  {
    id: 'provider-shared-missing',
    pattern:
      /Failed to load library \S*libonnxruntime_providers_shared\.so with error: [^\n]*cannot open shared object file/,
    cause: () =>
      'libonnxruntime_providers_shared.so is not next to libonnxruntime.so.1: the GPU provider files are not installed (or only some were copied)',
    fix: () => 'gpen-lab setup cuda',
  },
  {
    id: 'provider-dependency-missing',
    pattern:
      /Failed to load library \S*(libonnxruntime_providers_\w+\.so) with error: (lib[\w.+-]+\.so(?:\.\d+)*): cannot open shared object file/,
    cause: (m) =>
      `${m[1]} needs ${m[2]}${familyOf(m[2]) ? ` (${familyOf(m[2])!.what})` : ''}, which the dynamic loader cannot find`,
    fix: (m, ctx) => libraryFix(m[2], ctx),
  },
  {
    id: 'provider-file-missing',
    pattern:
      /Failed to load library \S*(libonnxruntime_providers_(?:cuda|tensorrt)\.so) with error: \S*libonnxruntime_providers_\w+\.so: cannot open shared object file/,
    cause: (m) => `${m[1]} is not installed next to libonnxruntime.so.1`,
    fix: () => 'gpen-lab setup cuda',
  },
  {
    id: 'cudnn8-nvrtc',
    pattern: /Could not load library (libcudnn\w*\.so\.8)\. Error: (libnvrtc[\w.]*): cannot open shared object file/,
    cause: (m) =>
      `${m[1]} (cuDNN 8) could not open ${m[2]}: NVRTC is missing, and cuDNN 8 is the wrong major for this build (it needs cuDNN 9)`,
    fix: (_m, ctx) =>
      `install ${installLine('libcudnn.so.9', cuda(ctx))} and NVRTC ${cuda(ctx)}, then export LD_LIBRARY_PATH=<their folder>:$LD_LIBRARY_PATH`,
  },
  {
    id: 'cudnn-missing',
    pattern: /(libcudnn\w*\.so\.\d+): cannot open shared object file/,
    cause: (m) => `${m[1]} (cuDNN, opened when a session starts) is not found by the dynamic loader`,
    fix: (m, ctx) => libraryFix(m[1], ctx),
  },
  {
    // the CUDA provider starts without cuDNN and fails at the first convolution
    id: 'cudnn-unavailable',
    pattern: /cuDNN is unavailable|RequireCudnnHandle/,
    cause: () =>
      'cuDNN 9 could not be used: no libcudnn.so.9 loaded, or the one that loaded is not cuDNN 9 (cuDNN is opened when a session starts or at its first convolution)',
    fix: (_m, ctx) => libraryFix('libcudnn.so.9', ctx),
  },
  {
    id: 'tensorrt-missing',
    pattern: /(libnvinfer\w*\.so\.\d+|libnvonnxparser\.so\.\d+): cannot open shared object file/,
    cause: (m) => `${m[1]} (TensorRT) is not found by the dynamic loader`,
    fix: (m, ctx) => libraryFix(m[1], ctx),
  },
  {
    id: 'tensorrt-not-installed',
    pattern: /Please install TensorRT libraries as mentioned in the GPU requirements page/,
    cause: () => 'TensorRT 10 is not installed or not on the loader path',
    fix: (_m, ctx) => libraryFix('libnvinfer.so.10', ctx),
  },
  {
    id: 'driver-insufficient',
    pattern:
      /CUDA driver version is insufficient for CUDA runtime version|CUDA failure 35\b|CUDA_ERROR_INSUFFICIENT_DRIVER/,
    cause: (_m, ctx) =>
      `the NVIDIA driver${ctx.driverVersion ? ` ${ctx.driverVersion}` : ''} is older than the CUDA ${cuda(ctx)} runtime this build needs${ctx.cudaDriverVersion ? ` (it supports CUDA <= ${ctx.cudaDriverVersion})` : ''}`,
    fix: (_m, ctx) =>
      `${ctx.driverVersion ? `driver ${ctx.driverVersion.split('.')[0]} supports CUDA <= ${ctx.cudaDriverVersion ?? '?'}; this build needs ${cuda(ctx)}.x: ` : ''}update the driver to >= ${ctx.driverMinimum ?? '580'} or use the cpu/webgpu provider`,
  },
  {
    id: 'no-kernel-image',
    pattern: /no kernel image is available for execution on the device|cudaErrorNoKernelImageForDevice/,
    cause: (_m, ctx) =>
      `this build has no kernels for the GPU${ctx.computeCapability ? ` (compute capability ${ctx.computeCapability})` : ''}: see the doctor's kernel list`,
    fix: () => "use an ONNX Runtime build compiled for this GPU's architecture, or the webgpu provider",
  },
  {
    id: 'no-cuda-device',
    pattern: /no CUDA-capable device is detected|CUDA failure 100\b|CUDA_ERROR_NO_DEVICE/,
    cause: () =>
      'CUDA sees no GPU: none is installed, CUDA_VISIBLE_DEVICES hides them, or the container was started without GPUs',
    fix: () =>
      'check CUDA_VISIBLE_DEVICES (unset it or list the GPU), and start containers with --gpus all (NVIDIA Container Toolkit)',
  },
  {
    id: 'generic-cuda-requirements',
    pattern: /Failed to create CUDAExecutionProvider\. Require cuDNN (\d+)\.\* and CUDA (\d+)\.\*/,
    cause: (_m, ctx) =>
      `the CUDA provider could not be created: one of its libraries did not load (ONNX Runtime's generic text names CUDA 12; this build needs CUDA ${cuda(ctx)} and cuDNN 9)`,
    fix: (_m, ctx) =>
      ctx.found && Object.keys(ctx.found).length
        ? exportLine(Object.values(ctx.found)[0][0])
        : 'gpen-lab doctor --provider cuda (its library section names the one that is missing)',
  },
  {
    id: 'ep-append-failed',
    pattern: /OrtSessionOptionsAppendExecutionProvider_(\w+): Failed to load shared library/,
    cause: (m) => `the ${m[1]} provider library could not be loaded`,
    fix: () => 'gpen-lab setup cuda',
  },
  {
    id: 'provider-unsupported',
    pattern: /executionProviders\[\d+\] is unsupported: '(\w+)'/,
    cause: (m, ctx) =>
      `this onnxruntime-node binary has no '${m[1]}' provider${ctx.runtimeProviders?.length ? ` (it knows ${ctx.runtimeProviders.join(', ')})` : ''}`,
    fix: () => 'use one of cpu, cuda, tensorrt, webgpu (cuda and tensorrt after gpen-lab setup cuda)',
  },
  {
    id: 'undefined-symbol',
    pattern: /undefined symbol: (\S+)/,
    cause: (m) =>
      `a library exports no ${m[1]}: two libraries of different versions were mixed (for instance a cuDNN or cuBLAS of another release first on LD_LIBRARY_PATH)`,
    fix: () => 'gpen-lab doctor --provider cuda, then put the folder of the matching versions first on LD_LIBRARY_PATH',
  },
  {
    id: 'vulkan-missing',
    pattern: /Couldn't load Vulkan: (libvulkan\.so\.\d+)/,
    cause: (m) => `${m[1]} (the Vulkan loader, which WebGPU uses on Linux) is not installed`,
    fix: () => `install ${installLine('libvulkan.so.1')}`,
  },
  {
    id: 'webgpu-no-adapter',
    pattern: /found no GPU adapter|Failed to get a WebGPU adapter/,
    cause: () => 'WebGPU found no GPU adapter: no GPU with a Vulkan driver is visible',
    fix: () =>
      `install ${installLine('libvulkan.so.1')}; on a headless NVIDIA machine also export VK_DRIVER_FILES=<the nvidia_icd.json of the driver>`,
  },
];

/** Every signature that matches `text`, once each, in the order of the table (most specific first). */
export function diagnose(text: string, ctx: DiagnosisContext): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const s of SIGNATURES) {
    const m = text.match(s.pattern);
    if (!m) continue;
    // a more specific signature about the same library already said it
    if (s.id === 'cudnn-missing' && seen.has('cudnn8-nvrtc')) continue;
    if (s.id === 'provider-file-missing' && seen.has('provider-shared-missing')) continue;
    if (s.id === 'ep-append-failed' && (seen.has('provider-shared-missing') || seen.has('provider-file-missing')))
      continue;
    if (s.id === 'webgpu-no-adapter' && seen.has('vulkan-missing')) continue;
    seen.add(s.id);
    out.push({ id: s.id, verdict: 'fail', message: s.cause(m, ctx), fix: s.fix(m, ctx) });
  }
  if (out.length === 0 && text.trim()) {
    out.push({
      id: 'unrecognised',
      verdict: 'warn',
      message: `unrecognised error: ${text.trim().split('\n')[0].slice(0, 300)}`,
      fix: 'run gpen-lab doctor --json and report it',
    });
  }
  return out;
}
