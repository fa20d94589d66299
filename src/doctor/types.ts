// Shapes of the doctor's report (schema gpen-lab.doctor/1). The lab records one per cell, unchanged.
import type { RuntimeBuild } from '../runtime/builds.js';
import type { Provider } from '../runtime/providers.js';

export type Verdict = 'ok' | 'warn' | 'fail' | 'skip';

/** One problem found, with what to do: `fix` is a line the user can paste where one exists. */
export interface Finding {
  /** Stable identifier of the rule or signature that produced it (e.g. "lib-missing", "driver-too-old"). */
  id: string;
  verdict: Verdict;
  /** What is wrong, naming the file, library, version or device. */
  message: string;
  /** What to do; a shell command where one exists. */
  fix: string | null;
}

/** A shared library a provider needs, resolved as the dynamic loader would. */
export interface LibraryCheck {
  /** The soname asked for, e.g. "libcudart.so.13". */
  soname: string;
  /** Why it is needed: "DT_NEEDED of libonnxruntime_providers_cuda.so" or "dlopen at run time". */
  neededBy: string;
  /** Where the loader's search found it: runpath | ld_library_path | ld.so.cache | default | null (missing). */
  foundVia: 'runpath' | 'ld_library_path' | 'ld.so.cache' | 'default' | null;
  /** Absolute path it resolves to (symlinks followed), or null when missing. */
  path: string | null;
  /** Version read by calling the library ("13.0", "9.13.0"), null when not readable; `versionError` says why. */
  version: string | null;
  versionError?: string;
  /** Copies of this library (any major) found elsewhere, for the fix. */
  candidates: LibraryCandidate[];
}

export interface LibraryCandidate {
  path: string;
  soname: string;
  /** Major of the soname (13 for libcudart.so.13), null when the file has none. */
  major: number | null;
  version: string | null;
  /** Where it was found: "LD_LIBRARY_PATH", "ld.so.cache", "pip wheel", "conda", "/usr/local/cuda-*", "/opt", ... */
  source: string;
  /** True when the major is the one the provider build needs. */
  matches: boolean;
}

export interface GpuDevice {
  index: number;
  name: string;
  /** "9.0" */
  computeCapability: string | null;
  memoryTotalMiB: number | null;
  uuid?: string | null;
  /** In use now, by anyone (NVML only). */
  memoryUsedMiB?: number | null;
  /** What else runs on it: the compute processes NVML reports (null: not reported by this source or driver). */
  processes?: { pid: number; usedMiB: number; command: string | null }[] | null;
}

export interface GpuReport {
  /** Where the figures came from: nvml (libnvidia-ml.so.1), cuda-driver (libcuda.so.1), nvidia-smi, or none. */
  source: 'nvml' | 'cuda-driver' | 'nvidia-smi' | 'none';
  /** Each source tried, in order, and why it did not answer. */
  tried: { source: string; ok: boolean; error?: string }[];
  driverVersion: string | null;
  /** Highest CUDA version the driver supports, "13.0". */
  cudaDriverVersion: string | null;
  devices: GpuDevice[];
}

/** Architectures compiled into a CUDA binary's fatbin. */
export interface FatbinSummary {
  file: string;
  /** Real architectures with machine code (cubin): 75, 80, 86, 89, 90, 100, 120 ... */
  sm: number[];
  /** Virtual architectures shipped as PTX (JIT-compiled for newer GPUs). */
  ptx: number[];
  entries: number;
  /** The highest PTX ISA version of its PTX ("8.2"), when it ships PTX: a driver JIT-compiles only ISAs it knows. */
  ptxIsa?: string;
}

export interface ProbeResult {
  provider: string;
  /** What was asked for and what ran (from the session's placement). */
  asked: string;
  ran: string[] | null;
  ok: boolean;
  /** Stage reached: spawn | load-runtime | create-session | run | done. */
  stage: string;
  ms: number;
  error: string | null;
  /** The tail of the child's stderr (ONNX Runtime logs the library it failed to load there). */
  stderrTail: string;
  exitCode: number | null;
  signal: string | null;
}

/** What the doctor found for one execution provider. */
export interface ProviderReport {
  provider: Provider;
  /** Provider files next to libonnxruntime.so.1. */
  files: { dir: string; present: string[]; missing: string[] };
  /** DT_NEEDED and RUNPATH of the provider library when present, and how they differ from the project's record. */
  elf: { file: string; needed: string[]; runpath: string[]; notInRecord: string[]; recordedNotNeeded: string[] } | null;
  libraries: LibraryCheck[];
  fatbin: FatbinSummary | null;
  kernels: { gpu: number; computeCapability: string; runs: boolean; how: string | null; reason: string }[];
  probe: ProbeResult | null;
  findings: Finding[];
  verdict: 'ok' | 'fail';
}

/** One runtime build's GPU path on this machine: what it needs, what resolves, whether it fits, what to do. */
export interface BuildReport {
  build: RuntimeBuild;
  ortVersion: string;
  /** The npm package its providers come from, "name@version". */
  providerPackage: string;
  needs: { cudaMajor: number; cudnnMajor: number; driverMinimum: string | null };
  /** Its libonnxruntime and CUDA provider are in place (installedBuilds). */
  installed: boolean;
  library: { path: string; present: boolean };
  /** Its provider files in the folder they go in (beside onnxruntime-node's library for ort1.29-cuda13). */
  files: { dir: string; present: string[]; missing: string[] };
  /** The installed CUDA provider's DT_NEEDED and RUNPATH against the record; null when it is not installed. */
  elf: ProviderReport['elf'];
  /** What its CUDA provider needs (the record), each resolved as the loader would, with its version. */
  libraries: LibraryCheck[];
  /** What its TensorRT provider needs beyond those; their findings are warnings, TensorRT being optional. */
  tensorrtLibraries: LibraryCheck[];
  /** The kernels of its CUDA provider: read from the installed file, else the project's record of it. */
  fatbin: FatbinSummary;
  kernels: ProviderReport['kernels'];
  /** The driver: its version, the newest CUDA it runs, whether that runs this build (null: no driver answers). */
  driver: { version: string | null; cudaCeiling: string | null; runsBuild: boolean | null };
  /** This machine can run it: the driver runs its CUDA major and every GPU finds a kernel; null without a GPU. */
  fits: boolean | null;
  /** Installed, fits, and no failing finding: its CUDA provider can load here. */
  ready: boolean;
  findings: Finding[];
  /** The first thing to do (the first failing finding's fix); null when ready or without a GPU. */
  fix: string | null;
}
