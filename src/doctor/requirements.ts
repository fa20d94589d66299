// What the pinned GPU provider build needs from the system, recorded here so that the doctor works before
// `setup cuda`: ONNX Runtime 1.29.0's providers from com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9, built against
// CUDA 13 and cuDNN 9 (DT_NEEDED read from the files with readelf on 2026-11-24; dlopen'ed ones from ONNX Runtime's
// sources). Version functions: how to ask each library its version.

export const REQUIRED_CUDA_MAJOR = 13;

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
  /** Where users get it, for the fix when no copy is found. */
  install: string;
}

export const FAMILIES: LibraryFamily[] = [
  {
    prefix: 'libcudart.so',
    what: 'CUDA runtime',
    version: { kind: 'out-int', symbol: 'cudaRuntimeGetVersion', format: 'cuda' },
    install: 'the CUDA 13 toolkit (cuda-cudart-13-0) or pip install nvidia-cuda-runtime',
  },
  {
    prefix: 'libcuda.so',
    what: 'CUDA driver',
    version: { kind: 'out-int', symbol: 'cuDriverGetVersion', format: 'cuda' },
    install: 'the NVIDIA driver (>= 580 for CUDA 13); in a container: --gpus all with the NVIDIA Container Toolkit',
  },
  {
    prefix: 'libcublasLt.so',
    what: 'cuBLASLt',
    version: { kind: 'ret-size', symbol: 'cublasLtGetVersion', format: 'mmp' },
    install: 'cuBLAS for CUDA 13 (libcublas-13-0) or pip install nvidia-cublas',
  },
  {
    prefix: 'libcublas.so',
    what: 'cuBLAS',
    version: { kind: 'property', symbol: 'cublasGetProperty' },
    install: 'cuBLAS for CUDA 13 (libcublas-13-0) or pip install nvidia-cublas',
  },
  {
    prefix: 'libcurand.so',
    what: 'cuRAND',
    version: { kind: 'out-int', symbol: 'curandGetVersion', format: 'curand' },
    install: 'cuRAND for CUDA 13 (libcurand-13-0) or pip install nvidia-curand',
  },
  {
    prefix: 'libnvrtc.so',
    what: 'NVRTC',
    version: { kind: 'major-minor', symbol: 'nvrtcVersion' },
    install: 'NVRTC for CUDA 13 (cuda-nvrtc-13-0) or pip install nvidia-cuda-nvrtc',
  },
  {
    prefix: 'libcudnn',
    what: 'cuDNN',
    version: { kind: 'ret-size', symbol: 'cudnnGetVersion', format: 'mmp' },
    install: 'cuDNN 9 for CUDA 13 (apt cudnn9-cuda-13 or pip install nvidia-cudnn-cu13)',
  },
  {
    prefix: 'libnvinfer',
    what: 'TensorRT',
    version: { kind: 'ret-int', symbol: 'getInferLibVersion', format: 'mmp' },
    install: 'TensorRT 10 for CUDA 13 (apt libnvinfer10 or pip install tensorrt-cu13)',
  },
  {
    prefix: 'libnvonnxparser.so',
    what: 'TensorRT ONNX parser',
    version: null,
    install: 'TensorRT 10 (apt libnvonnxparsers10 or pip install tensorrt-cu13)',
  },
  {
    prefix: 'libvulkan.so',
    what: 'Vulkan loader',
    version: null,
    install: "the Vulkan loader (apt install libvulkan1) and the NVIDIA driver's Vulkan ICD",
  },
];

export function familyOf(soname: string): LibraryFamily | null {
  // longest prefix first: libcublasLt before libcublas
  return (
    [...FAMILIES].sort((a, b) => b.prefix.length - a.prefix.length).find((f) => soname.startsWith(f.prefix)) ?? null
  );
}

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
const CUDNN = [
  'libcudnn.so.9',
  'libcudnn_graph.so.9',
  'libcudnn_ops.so.9',
  'libcudnn_cnn.so.9',
  'libcudnn_adv.so.9',
  'libcudnn_engines_precompiled.so.9',
  'libcudnn_engines_runtime_compiled.so.9',
  'libcudnn_heuristic.so.9',
];

export const PROVIDER_REQUIREMENTS: Record<'cuda' | 'tensorrt' | 'webgpu', Requirement[]> = {
  cuda: [
    ...['libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1'].map(
      (s): Requirement => ({ soname: s, neededBy: 'DT_NEEDED' }),
    ),
    ...SYSTEM.map(sys),
    ...CUDNN.map((s): Requirement => ({ soname: s, neededBy: 'dlopen' })),
    { soname: 'libnvrtc.so.13', neededBy: 'dlopen' },
  ],
  tensorrt: [
    ...['libcublas.so.13', 'libnvinfer.so.10', 'libnvonnxparser.so.10', 'libcudart.so.13', 'libcudnn.so.9'].map(
      (s): Requirement => ({ soname: s, neededBy: 'DT_NEEDED' }),
    ),
    ...SYSTEM.map(sys),
    { soname: 'libnvinfer_plugin.so.10', neededBy: 'dlopen' },
  ],
  // Dawn (WebGPU) reaches the GPU through Vulkan on Linux
  webgpu: [{ soname: 'libvulkan.so.1', neededBy: 'dlopen' }],
};

/** Linux driver minimums per CUDA major (NVIDIA's CUDA toolkit release notes). */
export function driverMinimumFor(cudaMajor: number): string | null {
  return ({ 11: '450.80.02', 12: '525.60.13', 13: '580.65.06' } as Record<number, string>)[cudaMajor] ?? null;
}
