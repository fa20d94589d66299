// The doctor's first section: OS, libc, container, CPU, Node, ONNX Runtime and the providers its binary knows, and
// the environment variables that decide which native libraries load.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { missingProviderFiles } from '../runtime/providers.js';
import { knownProviders, runtimeVersion } from '../runtime/session.js';

export const ENV_VARS = [
  'LD_LIBRARY_PATH',
  'CUDA_VISIBLE_DEVICES',
  'CUDA_MODULE_LOADING',
  'CUDA_HOME',
  'CUDA_PATH',
  'NVIDIA_VISIBLE_DEVICES',
  'NVIDIA_DRIVER_CAPABILITIES',
] as const;

export interface ContainerInfo {
  inContainer: boolean;
  /** docker, podman, kubernetes, lxc, systemd-nspawn, wsl (not a container, but it changes where libcuda lives), or null. */
  kind: string | null;
  evidence: string | null;
}

export interface SystemReport {
  os: string;
  distro: string | null;
  kernel: string;
  arch: string;
  libc: string | null;
  container: ContainerInfo;
  cpu: { model: string; cores: number };
  memoryGiB: number;
  node: string;
  onnxruntime: string;
  /**
   * Providers this onnxruntime-node binary was built with (bundled) or can load from provider files beside
   * libonnxruntime.so.1; `missingFiles` names those absent (empty when bundled or installed).
   */
  runtimeProviders: { provider: string; bundled: boolean; missingFiles: string[] }[];
  env: Record<string, string | null>;
}

const read = (f: string): string | null => {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return null;
  }
};

/** Container detection from the usual marks; `files` lets tests point it at a fake root. */
export function detectContainer(
  files: { dockerenv?: string; containerenv?: string; cgroup?: string; procVersion?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): ContainerInfo {
  const dockerenv = files.dockerenv ?? '/.dockerenv';
  const containerenv = files.containerenv ?? '/run/.containerenv';
  if (existsSync(dockerenv)) return { inContainer: true, kind: 'docker', evidence: `${dockerenv} exists` };
  if (existsSync(containerenv)) return { inContainer: true, kind: 'podman', evidence: `${containerenv} exists` };
  if (env.KUBERNETES_SERVICE_HOST)
    return { inContainer: true, kind: 'kubernetes', evidence: 'KUBERNETES_SERVICE_HOST is set' };
  if (env.container)
    return { inContainer: true, kind: env.container, evidence: `container=${env.container} in the environment` };
  const cgroup = read(files.cgroup ?? '/proc/1/cgroup') ?? '';
  const m = /(docker|kubepods|containerd|lxc|libpod)/.exec(cgroup);
  if (m)
    return {
      inContainer: true,
      kind: m[1] === 'kubepods' ? 'kubernetes' : m[1] === 'libpod' ? 'podman' : m[1],
      evidence: `/proc/1/cgroup mentions ${m[1]}`,
    };
  const ver = read(files.procVersion ?? '/proc/version') ?? '';
  if (/microsoft/i.test(ver))
    return {
      inContainer: false,
      kind: 'wsl',
      evidence: '/proc/version names Microsoft (WSL: libcuda.so.1 lives in /usr/lib/wsl/lib)',
    };
  return { inContainer: false, kind: null, evidence: null };
}

export function readSystem(): SystemReport {
  const osRelease = read('/etc/os-release') ?? '';
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease);
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()}`,
    distro: pretty ? pretty[1] : null,
    kernel: os.release(),
    arch: process.arch,
    libc: header?.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : null,
    container: detectContainer(),
    cpu: { model: cpus[0]?.model ?? 'unknown', cores: cpus.length },
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    onnxruntime: runtimeVersion(),
    runtimeProviders: knownProviders().map((p) => ({
      ...p,
      missingFiles: p.bundled ? [] : missingProviderFiles(p.provider),
    })),
    env: Object.fromEntries(ENV_VARS.map((k) => [k, process.env[k] ?? null])),
  };
}
