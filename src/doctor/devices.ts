// `--devices all|0,2,...`: which GPUs of this host a command spreads over, checked against the GPUs the doctor sees
// (NVML, the CUDA driver or nvidia-smi); a GPU that is not there is a coded error naming the ones that are.
import { GpenLabError } from '../errors.js';
import { readGpus } from './gpu.js';
import type { GpuReport } from './types.js';

const listOf = (g: GpuReport) =>
  g.devices.length === 0
    ? 'no GPU is visible here'
    : `this host has ${g.devices.map((d) => `GPU ${d.index} (${d.name})`).join(', ')}`;

/** The GPU indices `spec` names ("all", "0,2", "1"), in order, each once. */
export function parseDevices(spec: string, gpus: GpuReport, flag = '--devices'): number[] {
  const v = spec.trim().toLowerCase();
  const there = gpus.devices.map((d) => d.index);
  if (v === 'all') {
    if (there.length === 0)
      throw new GpenLabError(
        'E_PROVIDER_UNAVAILABLE',
        `${flag} all: ${listOf(gpus)} (source: ${gpus.source})`,
        'Run on a host with an NVIDIA GPU and its driver (gpen-lab doctor says what it sees), or leave the flag out.',
        { input: flag },
      );
    return there;
  }
  const parts = v.split(',').map((x) => x.trim());
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p))
      throw new GpenLabError(
        'E_ARGUMENT',
        `${flag} ${spec}: "${p}" is not a GPU index`,
        `Pass ${flag} all, or GPU indices as nvidia-smi numbers them, comma-separated (0,1).`,
        { input: flag },
      );
    const n = Number(p);
    if (!there.includes(n))
      throw new GpenLabError(
        'E_ARGUMENT',
        `${flag} ${spec}: there is no GPU ${n}; ${listOf(gpus)}`,
        `Pass ${flag} all or indices of the GPUs listed${there.length ? ` (${there.join(',')})` : ''}.`,
        { input: flag },
      );
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** `spec` against the GPUs this host has now (the doctor's reading). */
export async function devicesHere(spec: string, flag = '--devices'): Promise<number[]> {
  return parseDevices(spec, await readGpus(), flag);
}
