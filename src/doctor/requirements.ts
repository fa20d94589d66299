// What each runtime build's GPU providers need from the system, recorded here so that the doctor works before
// `setup cuda`. DT_NEEDED read from the files with readelf: ort1.29-cuda13 from
// com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (CUDA 13, cuDNN 9), ort1.19-cuda12 from its 0.2.1 (CUDA 12,
// cuDNN 9); dlopen'ed ones from ONNX Runtime's and cuDNN's sources. Version functions: how to ask each library.
import type { RuntimeBuild } from '../runtime/builds.js';
import { BUILD_SPECS } from '../runtime/builds.js';
import type { FatbinSummary } from './types.js';

/** The CUDA major of the default build (onnxruntime-node 1.29.0's providers). */
export const REQUIRED_CUDA_MAJOR = BUILD_SPECS['ort1.29-cuda13'].cudaMajor;

/** How a library family answers its version; `scale` turns the integer into major.minor(.patch). */
export type VersionCall =
  | { kind: 'out-int'; symbol: string; format: 'cuda' | 'curand' } // int f(int*)
  | { kind: 'ret-size'; symbol: string; format: 'mmp' } // size_t f(void): major*10000 + minor*100 + patch
  | { kind: 'ret-int'; symbol: string; format: 'mmp' } // int32_t f(void), same encoding
  | { kind: 'property'; symbol: string } // int f(int type, int* value): 0 major, 1 minor, 2 patch
  | { kind: 'major-minor'; symbol: string }; // int f(int* major, int* minor)

export interface LibraryFamily {
  /** Name prefix: "libcudart.so". */
  prefix: string;
  what: string;
  version: VersionCall | null;
  /** Where users get it for a build of CUDA major `cuda`, for the fix when no copy is found. */
  install: (cuda: number) => string;
}

/** pip's NVIDIA wheels: unsuffixed for CUDA 13, `-cu12` for CUDA 12. */
const pip = (name: string, cuda: number): string => (cuda >= 13 ? name : `${name}-cu${cuda}`);
/** The oldest driver branch of a CUDA major, for the install lines. */
const driverBranch = (cuda: number): string => driverMinimumFor(cuda)?.split('.')[0] ?? '?';

export const FAMILIES: LibraryFamily[] = [
  {
    prefix: 'libcudart.so',
    what: 'CUDA runtime',
    version: { kind: 'out-int', symbol: 'cudaRuntimeGetVersion', format: 'cuda' },
    install: (c) => `the CUDA ${c} toolkit (cuda-cudart-${c}-0) or pip install ${pip('nvidia-cuda-runtime', c)}`,
  },
  {
    prefix: 'libcuda.so',
    what: 'CUDA driver',
    version: { kind: 'out-int', symbol: 'cuDriverGetVersion', format: 'cuda' },
    install: (c) =>
      `the NVIDIA driver (>= ${driverBranch(c)} for CUDA ${c}); in a container: --gpus all with the NVIDIA Container Toolkit`,
  },
  {
    prefix: 'libcublasLt.so',
    what: 'cuBLASLt',
    version: { kind: 'ret-size', symbol: 'cublasLtGetVersion', format: 'mmp' },
    install: (c) => `cuBLAS for CUDA ${c} (libcublas-${c}-0) or pip install ${pip('nvidia-cublas', c)}`,
  },
  {
    prefix: 'libcublas.so',
    what: 'cuBLAS',
    version: { kind: 'property', symbol: 'cublasGetProperty' },
    install: (c) => `cuBLAS for CUDA ${c} (libcublas-${c}-0) or pip install ${pip('nvidia-cublas', c)}`,
  },
  {
    prefix: 'libcurand.so',
    what: 'cuRAND',
    version: { kind: 'out-int', symbol: 'curandGetVersion', format: 'curand' },
    install: (c) => `cuRAND for CUDA ${c} (libcurand-${c}-0) or pip install ${pip('nvidia-curand', c)}`,
  },
  {
    // cufftGetVersion answers major*1000 + minor*100 + patch, as cuRAND does
    prefix: 'libcufft.so',
    what: 'cuFFT',
    version: { kind: 'out-int', symbol: 'cufftGetVersion', format: 'curand' },
    install: (c) => `cuFFT for CUDA ${c} (libcufft-${c}-0) or pip install ${pip('nvidia-cufft', c)}`,
  },
  {
    prefix: 'libnvrtc.so',
    what: 'NVRTC',
    version: { kind: 'major-minor', symbol: 'nvrtcVersion' },
    install: (c) => `NVRTC for CUDA ${c} (cuda-nvrtc-${c}-0) or pip install ${pip('nvidia-cuda-nvrtc', c)}`,
  },
  {
    prefix: 'libcudnn',
    what: 'cuDNN',
    version: { kind: 'ret-size', symbol: 'cudnnGetVersion', format: 'mmp' },
    install: (c) => `cuDNN 9 for CUDA ${c} (apt cudnn9-cuda-${c} or pip install nvidia-cudnn-cu${c})`,
  },
  {
    prefix: 'libnvinfer',
    what: 'TensorRT',
    version: { kind: 'ret-int', symbol: 'getInferLibVersion', format: 'mmp' },
    install: (c) => `TensorRT 10 for CUDA ${c} (apt libnvinfer10 or pip install tensorrt-cu${c})`,
  },
  {
    prefix: 'libnvonnxparser.so',
    what: 'TensorRT ONNX parser',
    version: null,
    install: (c) => `TensorRT 10 (apt libnvonnxparsers10 or pip install tensorrt-cu${c})`,
  },
  {
    prefix: 'libvulkan.so',
    what: 'Vulkan loader',
    version: null,
    install: () => "the Vulkan loader (apt install libvulkan1) and the NVIDIA driver's Vulkan ICD",
  },
];

export function familyOf(soname: string): LibraryFamily | null {
  // longest prefix first: libcublasLt before libcublas
  return (
    [...FAMILIES].sort((a, b) => b.prefix.length - a.prefix.length).find((f) => soname.startsWith(f.prefix)) ?? null
  );
}

/** Where to get `soname` for a build of CUDA major `cuda` (the soname itself when its family is unknown). */
export function installLine(soname: string, cuda: number = REQUIRED_CUDA_MAJOR): string {
  const line = familyOf(soname)?.install(cuda) ?? soname;
  const suite = DEBIAN_SUITES[cuda];
  const m = /^lib(cudart|cublasLt|cublas|curand|cufft|nvrtc)\.so\.([\d.]+)$/.exec(soname);
  return suite && m ? `${line}, or Debian's ${`lib${m[1]}${m[2]}`.toLowerCase()} (${suite} non-free)` : line;
}

/** Debian's suites whose non-free component packages a CUDA major's runtime libraries (12.4 and 11.8). */
const DEBIAN_SUITES: Record<number, string> = { 12: 'trixie', 11: 'bookworm' };

export interface Requirement {
  soname: string;
  /** 'DT_NEEDED' (the loader needs it to load the provider) or 'dlopen' (opened when a session starts). */
  neededBy: 'DT_NEEDED' | 'dlopen';
  /** System libraries (libc, libstdc++...) are listed but not checked. */
  system?: boolean;
}

const SYSTEM = [
  'libdl.so.2',
  'librt.so.1',
  'libpthread.so.0',
  'libstdc++.so.6',
  'libm.so.6',
  'libgcc_s.so.1',
  'libc.so.6',
  'ld-linux-x86-64.so.2',
];
const sys = (s: string): Requirement => ({ soname: s, neededBy: 'DT_NEEDED', system: true });
const needed = (s: string): Requirement => ({ soname: s, neededBy: 'DT_NEEDED' });
const opened = (s: string): Requirement => ({ soname: s, neededBy: 'dlopen' });
// libcudnn.so.9 opens the others as a session needs them
const CUDNN_PARTS = [
  'libcudnn_graph.so.9',
  'libcudnn_ops.so.9',
  'libcudnn_cnn.so.9',
  'libcudnn_adv.so.9',
  'libcudnn_engines_precompiled.so.9',
  'libcudnn_engines_runtime_compiled.so.9',
  'libcudnn_heuristic.so.9',
];

type GpuProvider = 'cuda' | 'tensorrt';

/** Each build's CUDA and TensorRT providers: what they need, in the order the doctor lists it. */
export const BUILD_REQUIREMENTS: Record<RuntimeBuild, Record<GpuProvider, Requirement[]>> = {
  'ort1.29-cuda13': {
    cuda: [
      ...['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1'].map(needed),
      ...SYSTEM.map(sys),
      ...['libcudnn.so.9', ...CUDNN_PARTS].map(opened),
      opened('libnvrtc.so.13'),
    ],
    tensorrt: [
      ...['libcublas.so.13', 'libnvinfer.so.10', 'libnvonnxparser.so.10', 'libcudart.so.13', 'libcudnn.so.9'].map(
        needed,
      ),
      ...SYSTEM.map(sys),
      opened('libnvinfer_plugin.so.10'),
    ],
  },
  // 0.2.1's CUDA provider links cuDNN and cuFFT and not libcuda.so.1, which libcudart opens
  'ort1.19-cuda12': {
    cuda: [
      ...[
        'libcublasLt.so.12',
        'libcublas.so.12',
        'libcudnn.so.9',
        'libcurand.so.10',
        'libcufft.so.11',
        'libcudart.so.12',
      ].map(needed),
      ...SYSTEM.map(sys),
      opened('libcuda.so.1'),
      ...CUDNN_PARTS.map(opened),
      opened('libnvrtc.so.12'),
    ],
    tensorrt: [
      ...[
        'libcudnn.so.9',
        'libcublas.so.12',
        'libnvinfer.so.10',
        'libnvinfer_plugin.so.10',
        'libnvonnxparser.so.10',
        'libcudart.so.12',
      ].map(needed),
      ...SYSTEM.map(sys),
    ],
  },
};

export const PROVIDER_REQUIREMENTS: Record<GpuProvider | 'webgpu', Requirement[]> = {
  ...BUILD_REQUIREMENTS['ort1.29-cuda13'],
  // Dawn (WebGPU) reaches the GPU through Vulkan on Linux
  webgpu: [opened('libvulkan.so.1')],
};

/**
 * The kernels compiled into each build's CUDA provider (its .nv_fatbin read with fatbin.ts), so that the doctor says
 * which GPUs find one before `setup cuda`: 0.2.1's ships PTX of ISA 8.2 (CUDA 12.2), which sm_90 and newer JIT-compile.
 */
export const RECORDED_KERNELS: Record<RuntimeBuild, Omit<FatbinSummary, 'file'>> = {
  'ort1.29-cuda13': { sm: [75, 80, 86, 89, 90, 120], ptx: [], entries: 1591 },
  'ort1.19-cuda12': { sm: [60, 61, 70, 75, 80], ptx: [60, 61, 70, 75, 80], entries: 1520, ptxIsa: '8.2' },
};

/** Linux driver minimums per CUDA major (NVIDIA's CUDA toolkit release notes). */
export function driverMinimumFor(cudaMajor: number): string | null {
  return ({ 11: '450.80.02', 12: '525.60.13', 13: '580.65.06' } as Record<number, string>)[cudaMajor] ?? null;
}
