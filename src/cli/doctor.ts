// `gpen-lab doctor [--provider P]... [--json]`: what decides first (the provider auto chooses, the root cause of what
// does not run), then sections with a verdict each, and for every problem the fix to paste. Exit codes: decision.ts.
import { Command, Option } from 'commander';
import { noGpuMessage } from '../doctor/decision.js';
import type { DoctorReport, ProviderReport } from '../doctor/index.js';
import { runDoctor } from '../doctor/index.js';
import { familyOf } from '../doctor/requirements.js';
import type { BuildReport, Finding, GpuDevice, LibraryCheck } from '../doctor/types.js';
import type { Provider } from '../runtime/providers.js';
import { PROVIDERS, PROVIDER_SPECS, parseProvider } from '../runtime/providers.js';
import { printJson } from './output.js';

const mark = (v: string): string => (v === 'ok' ? 'ok  ' : v === 'warn' ? 'warn' : v === 'skip' ? 'skip' : 'FAIL');

function printFindings(fs: Finding[], w: (s: string) => void): void {
  for (const f of fs) {
    w(`    ${mark(f.verdict)} ${f.message}\n`);
    if (f.fix) w(`         fix: ${f.fix}\n`);
  }
}

/** "cuda (provider files absent)": what is true of each provider the binary can load, without a probe. */
function runtimeProvidersLine(r: DoctorReport): string {
  const rp = r.system.runtimeProviders;
  const built = rp.filter((p) => p.bundled).map((p) => p.provider);
  const loaded = rp
    .filter((p) => !p.bundled)
    .map((p) => {
      const state = p.missingFiles.length
        ? 'provider files absent'
        : r.decision.noGpu
          ? 'provider files present, no GPU to run on'
          : 'provider files present';
      return `${p.provider} (${state})`;
    });
  return `providers built in: ${built.join(', ') || 'none'}${loaded.length ? `; loaded from provider files: ${loaded.join(', ')}` : ''}`;
}

/** The libraries of one family as one name: "8 cuDNN libraries (libcudnn*.so.9)". */
function familyNames(libs: LibraryCheck[]): string[] {
  const groups = new Map<string, LibraryCheck[]>();
  for (const l of libs) {
    const key = familyOf(l.soname)?.prefix ?? l.soname;
    groups.set(key, [...(groups.get(key) ?? []), l]);
  }
  return [...groups.entries()].map(([prefix, g]) => {
    if (g.length === 1) return g[0].soname;
    const major = /\.so\.(\d+)/.exec(g[0].soname)?.[1];
    return `${g.length} ${familyOf(g[0].soname)?.what ?? ''} libraries (${prefix.replace(/\.so$/, '')}*.so${major ? `.${major}` : ''})`;
  });
}

/** What else runs on a GPU, as NVML reports it: ", nothing else on it", ", 1024 MiB in use: pid 4243 python3 (1024 MiB)". */
function occupancy(dev: GpuDevice): string {
  if (!dev.processes) return dev.memoryUsedMiB ? `, ${dev.memoryUsedMiB} MiB in use` : '';
  if (dev.processes.length === 0)
    return dev.memoryUsedMiB ? `, ${dev.memoryUsedMiB} MiB in use, no process` : ', nothing else on it';
  const ps = dev.processes.map((p) => `pid ${p.pid}${p.command ? ` ${p.command}` : ''} (${p.usedMiB} MiB)`);
  return `, ${dev.memoryUsedMiB ?? '?'} MiB in use: ${ps.join(', ')}`;
}

/** A provider stopped by the absence of a GPU: one line for what follows from it, no install line that cannot help. */
function foldedUnderNoGpu(p: ProviderReport, r: DoctorReport): string {
  const parts: string[] = [];
  if (p.files.missing.length) parts.push(`its provider files are absent (${p.files.missing.join(', ')})`);
  const missing = p.libraries.filter((l) => !l.path);
  const found = p.libraries.filter((l) => l.path);
  if (missing.length)
    parts.push(
      `${missing.length} of ${p.libraries.length} libraries it needs are missing (${familyNames(missing).join(', ')})`,
    );
  if (found.length)
    parts.push(`found: ${found.map((l) => `${l.soname}${l.version ? ` ${l.version}` : ''}`).join(', ')}`);
  const skip = r.decision.skipped.find((s) => s.provider === p.provider);
  if (p.provider === 'webgpu' && skip) parts.push(skip.reason);
  const left = p.findings.filter((f) => f.verdict !== 'ok').length;
  if (left)
    parts.push(
      left > 1
        ? `${left} findings and their fixes left out (--json has them)`
        : '1 finding and its fix left out (--json has it)',
    );
  return `    folded under no GPU: ${parts.join('; ')}\n`;
}

/** What decides, printed first: the cause, then the provider auto chooses and why, then the exit code. */
function formatDecision(r: DoctorReport, w: (s: string) => void): void {
  const d = r.decision;
  const cause = d.rootCause;
  const noGpuLine = () => {
    const named =
      d.asked === 'auto' ? ['cuda', 'tensorrt'] : d.asked.filter((p) => PROVIDER_SPECS[p].gpu && p !== 'webgpu');
    w(
      `    ${mark(d.asked !== 'auto' && d.failing.length ? 'fail' : 'warn')} no GPU: ${noGpuMessage(r.gpu)}, so ${named.length ? named.join(' and ') : 'cuda and tensorrt'} cannot run here and nothing to install for CUDA can help\n`,
    );
    if (cause?.id === 'no-gpu' && cause.fix) w(`         ${cause.fix}\n`);
  };
  w('Decision\n');
  if (cause && cause.id !== 'no-gpu') {
    w(
      `    FAIL ${cause.provider} does NOT run${r.gpu.devices.length ? ` although ${r.gpu.devices.length > 1 ? `${r.gpu.devices.length} GPUs are` : `GPU ${r.gpu.devices[0].index} (${r.gpu.devices[0].name}) is`} visible` : ''}: ${cause.message}\n`,
    );
    if (cause.fix) w(`         fix: ${cause.fix}\n`);
  }
  if (d.noGpu && (cause?.id === 'no-gpu' || d.stopped.length)) noGpuLine();
  const auto = d.auto;
  if (!auto) w(`    FAIL auto finds no provider that runs: ${d.why}\n`);
  else if (d.works === true) w(`    ok   auto chooses ${auto}, which runs here${tryLoad(r, auto)}: ${d.why}\n`);
  else w(`    auto would choose ${auto} (not try-loaded in this run): ${d.why}\n`);
  const asked = d.asked === 'auto' ? null : d.asked.join(', ');
  if (d.exitCode === 0) {
    w(
      `    exit 0: ${asked ? `${asked} run${d.asked.length > 1 ? '' : 's'}` : 'the provider auto chooses runs'}${d.excused.length ? `; ${d.excused.join(', ')} need a GPU and are not counted${d.excused.includes('cuda') ? ' (gpen-lab doctor --provider cuda exits 3 here)' : ''}` : ''}\n`,
    );
  } else {
    w(
      `    exit ${d.exitCode}: ${asked ? `${d.failing.join(', ')} ${d.failing.length > 1 ? 'were' : 'was'} asked for and ${d.failing.length > 1 ? 'do' : 'does'} not run` : d.failing.length ? `not every provider runs: ${d.failing.join(', ')}` : 'no provider auto tries runs'}\n`,
    );
  }
}

function tryLoad(r: DoctorReport, p: Provider): string {
  const probe = r.providers.find((x) => x.provider === p)?.probe;
  return probe ? ` (try-load ${(probe.ms / 1000).toFixed(1)} s)` : ' (its checks pass; not try-loaded: --no-probe)';
}

/** A library line: where the loader finds it and its version, or missing. */
function libraryLine(l: LibraryCheck, missing = 'FAIL'): string {
  return `    ${l.path ? 'ok  ' : missing} ${l.soname.padEnd(34)} ${l.path ? `${l.path}${l.version ? ` (${l.version})` : ''} [${l.foundVia}]` : 'missing'}${l.neededBy.startsWith('dlopen') ? '  (opened at run time)' : ''}\n`;
}

function buildHeading(b: BuildReport): string {
  return `Build ${b.build} (onnxruntime ${b.ortVersion}, providers ${b.providerPackage}; needs CUDA ${b.needs.cudaMajor}, cuDNN ${b.needs.cudnnMajor}, driver >= ${b.needs.driverMinimum ?? '?'})`;
}

/** One section per runtime build: installed or not, fits or not (and why), its libraries, the first fix. */
function formatBuilds(r: DoctorReport, w: (s: string) => void): void {
  if (r.builds.length === 0) return;
  const c = r.buildChoice;
  if (r.decision.noGpu) {
    // nothing to install can help without a GPU: one line per build, no fix
    w('Runtime builds: no GPU, see Decision\n');
    for (const b of r.builds) {
      const missing = b.libraries.filter((l) => !l.path);
      w(
        `${buildHeading(b)}: ${b.installed ? `installed in ${b.files.dir}` : 'not installed'}; ${missing.length ? `${missing.length} of ${b.libraries.length} libraries it needs are missing (${familyNames(missing).join(', ')})` : 'every library it needs resolves'}\n`,
      );
    }
    return;
  }
  w(
    `Runtime builds: a GPU run without --runtime takes ${c.run.build ?? 'none'} (${c.run.reason}); gpen-lab setup cuda here installs ${c.setup.build ?? 'none'} (${c.setup.reason})\n`,
  );
  for (const b of r.builds) {
    const driver = b.driver.cudaCeiling
      ? `${b.driver.version ? `driver ${b.driver.version}` : 'the driver'} runs CUDA ${b.driver.cudaCeiling} at most`
      : 'the driver says no CUDA version';
    const state = b.ready
      ? 'runs here'
      : b.fits === false
        ? 'does NOT fit this machine'
        : b.installed
          ? 'fits this machine, does NOT run yet'
          : 'fits this machine, not installed';
    w(`${buildHeading(b)}: ${b.installed ? `installed in ${b.files.dir}` : 'not installed'}; ${state} (${driver})\n`);
    for (const l of b.libraries) w(libraryLine(l));
    // TensorRT is optional: its missing libraries warn
    for (const l of b.tensorrtLibraries) w(libraryLine(l, 'warn'));
    for (const k of b.kernels)
      w(`    ${k.runs ? 'ok  ' : 'FAIL'} GPU ${k.gpu} (${k.computeCapability}): ${k.reason}\n`);
    printFindings(b.findings, w);
    if (b.fix) w(`    first: ${b.fix}\n`);
  }
}

export function formatDoctor(r: DoctorReport): string {
  let s = '';
  const w = (x: string) => {
    s += x;
  };
  const sys = r.system;
  const d = r.decision;
  const folded = (p: ProviderReport) => d.stopped.includes(p.provider);
  formatDecision(r, w);
  w('System\n');
  w(
    `    ${sys.distro ?? sys.os} (${sys.arch}, kernel ${sys.kernel}), ${sys.libc ?? 'libc unknown'}, ${sys.container.inContainer ? `in a ${sys.container.kind} container (${sys.container.evidence})` : sys.container.kind ? sys.container.kind : 'not in a container'}\n`,
  );
  w(
    `    CPU ${sys.cpu.model} x ${sys.cpu.cores}, ${sys.memoryGiB} GiB; Node ${sys.node}; onnxruntime-node ${sys.onnxruntime} (${runtimeProvidersLine(r)})\n`,
  );
  for (const [k, v] of Object.entries(sys.env)) w(`    ${k}=${v ?? '(unset)'}\n`);
  w(`GPU and driver (source: ${r.gpu.source})\n`);
  if (r.gpu.devices.length === 0)
    w(`    none found (${r.gpu.tried.map((t) => `${t.source}: ${t.ok ? 'ok' : t.error}`).join('; ')})\n`);
  else {
    w(`    driver ${r.gpu.driverVersion ?? '?'}, supports CUDA ${r.gpu.cudaDriverVersion ?? '?'}\n`);
    for (const dev of r.gpu.devices)
      w(
        `    GPU ${dev.index}: ${dev.name}, compute capability ${dev.computeCapability ?? '?'}, ${dev.memoryTotalMiB ? `${(dev.memoryTotalMiB / 1024).toFixed(1)} GiB` : '? GiB'}${occupancy(dev)}\n`,
      );
  }
  // the no-GPU finding is the decision's root cause, printed first
  printFindings(d.rootCause?.id === 'no-gpu' ? r.findings.filter((f) => f.id !== 'no-gpu') : r.findings, w);
  for (const p of r.providers) {
    const probe = p.probe
      ? `try-load: ${p.probe.ok ? `ran on ${p.probe.ran?.join(', ')}` : `failed at ${p.probe.stage}`}, ${(p.probe.ms / 1000).toFixed(1)} s`
      : '';
    if (folded(p)) {
      w(`Provider ${p.provider}: does NOT run: no GPU, see Decision${probe ? ` (${probe})` : ''}\n`);
      w(foldedUnderNoGpu(p, r));
      continue;
    }
    w(`Provider ${p.provider}: ${p.verdict === 'ok' ? 'runs' : 'does NOT run'}${probe ? ` (${probe})` : ''}\n`);
    if (p.files.present.length + p.files.missing.length > 0)
      w(
        `    files in ${p.files.dir}: ${p.files.present
          .map((f) => `${f} ok`)
          .concat(p.files.missing.map((f) => `${f} MISSING`))
          .join(', ')}\n`,
      );
    for (const l of p.libraries) w(libraryLine(l));
    if (p.fatbin && p.fatbin.entries > 0)
      w(
        `    kernels compiled in: sm ${p.fatbin.sm.join(', ')}${p.fatbin.ptx.length ? `; PTX ${p.fatbin.ptx.join(', ')}` : ''}\n`,
      );
    for (const k of p.kernels)
      w(`    ${k.runs ? 'ok  ' : 'FAIL'} GPU ${k.gpu} (${k.computeCapability}): ${k.reason}\n`);
    printFindings(p.findings, w);
    if (p.probe && !p.probe.ok && p.probe.error)
      w(`    ONNX Runtime said: ${p.probe.error.split('\n')[0].slice(0, 400)}\n`);
  }
  formatBuilds(r, w);
  const runs = r.providers.filter((p) => p.verdict === 'ok').map((p) => p.provider);
  if (d.failing.length) w(`Not every requested provider runs: ${d.failing.join(', ')}.\n`);
  else if (d.excused.length)
    w(`Every provider that can run without a GPU runs: ${runs.join(', ')}; ${d.excused.join(', ')} need a GPU.\n`);
  else w('Every requested provider runs.\n');
  return s;
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('why each execution provider will or will not run here, and the fix')
    .addOption(
      new Option(
        '--provider <p...>',
        'providers to check; the exit is 3 unless each runs (default: all, and the exit follows the provider auto chooses)',
      ).choices([...PROVIDERS]),
    )
    .option('--no-probe', 'skip the try-load in a child process')
    .option('--json', `the whole report (schema gpen-lab.doctor/1)`)
    .action(async (o: { provider?: string[]; probe: boolean; json?: boolean }) => {
      const providers: Provider[] = (o.provider ?? []).map((p) => parseProvider(p));
      const r = await runDoctor({ providers, probe: o.probe });
      if (o.json) printJson(r);
      else process.stdout.write(formatDoctor(r));
      process.exitCode = r.decision.exitCode;
    });
}
