// `gpen-lab doctor [--provider P]... [--json]`: sections with a verdict each, and for every problem the fix to paste.
// Exit 0 when every requested provider can run, 3 otherwise.
import { Command, Option } from 'commander';
import type { DoctorReport } from '../doctor/index.js';
import { runDoctor } from '../doctor/index.js';
import type { Finding } from '../doctor/types.js';
import type { Provider } from '../runtime/providers.js';
import { PROVIDERS, parseProvider } from '../runtime/providers.js';
import { printJson } from './output.js';

const mark = (v: string): string => (v === 'ok' ? 'ok  ' : v === 'warn' ? 'warn' : v === 'skip' ? 'skip' : 'FAIL');

function printFindings(fs: Finding[], w: (s: string) => void): void {
  for (const f of fs) {
    w(`    ${mark(f.verdict)} ${f.message}\n`);
    if (f.fix) w(`         fix: ${f.fix}\n`);
  }
}

export function formatDoctor(r: DoctorReport): string {
  let s = '';
  const w = (x: string) => { s += x; };
  const sys = r.system;
  w('System\n');
  w(`    ${sys.distro ?? sys.os} (${sys.arch}, kernel ${sys.kernel}), ${sys.libc ?? 'libc unknown'}, ${sys.container.inContainer ? `in a ${sys.container.kind} container (${sys.container.evidence})` : sys.container.kind ? sys.container.kind : 'not in a container'}\n`);
  w(`    CPU ${sys.cpu.model} x ${sys.cpu.cores}, ${sys.memoryGiB} GiB; Node ${sys.node}; onnxruntime-node ${sys.onnxruntime} (providers in its binary: ${sys.runtimeProviders.map((p) => `${p.provider}${p.bundled ? '' : ' (loadable)'}`).join(', ')})\n`);
  for (const [k, v] of Object.entries(sys.env)) w(`    ${k}=${v ?? '(unset)'}\n`);
  w(`GPU and driver (source: ${r.gpu.source})\n`);
  if (r.gpu.devices.length === 0) w(`    none found (${r.gpu.tried.map((t) => `${t.source}: ${t.ok ? 'ok' : t.error}`).join('; ')})\n`);
  else {
    w(`    driver ${r.gpu.driverVersion ?? '?'}, supports CUDA ${r.gpu.cudaDriverVersion ?? '?'}\n`);
    for (const d of r.gpu.devices) w(`    GPU ${d.index}: ${d.name}, compute capability ${d.computeCapability ?? '?'}, ${d.memoryTotalMiB ? `${(d.memoryTotalMiB / 1024).toFixed(1)} GiB` : '? GiB'}\n`);
  }
  printFindings(r.findings, w);
  for (const p of r.providers) {
    w(`Provider ${p.provider}: ${p.verdict === 'ok' ? 'runs' : 'does NOT run'}${p.probe ? ` (try-load: ${p.probe.ok ? `ran on ${p.probe.ran?.join(', ')}` : `failed at ${p.probe.stage}`}, ${(p.probe.ms / 1000).toFixed(1)} s)` : ''}\n`);
    if (p.files.present.length + p.files.missing.length > 0) w(`    files in ${p.files.dir}: ${p.files.present.map((f) => `${f} ok`).concat(p.files.missing.map((f) => `${f} MISSING`)).join(', ')}\n`);
    for (const l of p.libraries) {
      w(`    ${l.path ? 'ok  ' : 'FAIL'} ${l.soname.padEnd(34)} ${l.path ? `${l.path}${l.version ? ` (${l.version})` : ''} [${l.foundVia}]` : 'missing'}${l.neededBy.startsWith('dlopen') ? '  (opened at run time)' : ''}\n`);
    }
    if (p.fatbin && p.fatbin.entries > 0) w(`    kernels compiled in: sm ${p.fatbin.sm.join(', ')}${p.fatbin.ptx.length ? `; PTX ${p.fatbin.ptx.join(', ')}` : ''}\n`);
    for (const k of p.kernels) w(`    ${k.runs ? 'ok  ' : 'FAIL'} GPU ${k.gpu} (${k.computeCapability}): ${k.reason}\n`);
    printFindings(p.findings, w);
    if (p.probe && !p.probe.ok && p.probe.error) w(`    ONNX Runtime said: ${p.probe.error.split('\n')[0].slice(0, 400)}\n`);
  }
  w(r.ok ? 'Every requested provider runs.\n' : `Not every requested provider runs: ${r.providers.filter((p) => p.verdict !== 'ok').map((p) => p.provider).join(', ')}.\n`);
  return s;
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('why each execution provider will or will not run here, and the fix')
    .addOption(new Option('--provider <p...>', 'providers to check (default: all)').choices([...PROVIDERS]))
    .option('--no-probe', 'skip the try-load in a child process')
    .option('--json', `the whole report (schema gpen-lab.doctor/1)`)
    .action(async (o: { provider?: string[]; probe: boolean; json?: boolean }) => {
      const providers: Provider[] = (o.provider ?? []).map((p) => parseProvider(p));
      const r = await runDoctor({ providers, probe: o.probe });
      if (o.json) printJson(r);
      else process.stdout.write(formatDoctor(r));
      process.exitCode = r.ok ? 0 : 3;
    });
}
