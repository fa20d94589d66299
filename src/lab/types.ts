// The lab's shapes: the declarative config (schema/lab.schema.json publishes it), the job a cell process receives,
// and results.json (schema gpen-lab.results/1).
import type { GpuSummary } from '../doctor/gpu-sampler.js';
import type { LibrarySet } from '../doctor/library-set.js';
import type { Finding } from '../doctor/types.js';
import type { RestoreResult } from '../face/restore.js';
import type { Precision } from '../model/gpen-graph.js';
import type { ModelSpec } from '../model/registry.js';
import type { TimingStats } from '../metrics/stats.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import type { Provider } from '../runtime/providers.js';
import type { Route, RouteChoice } from '../runtime/routes.js';
import type { GraphOptLevel } from '../runtime/session.js';

export const RESULTS_SCHEMA = 'gpen-lab.results/1';

export interface SessionOptions {
  graphOptimizationLevel?: GraphOptLevel;
  intraOpNumThreads?: number;
  deviceId?: number;
  /** CUDA provider options by ONNX Runtime's names, replacing the fast route's option set: provider cuda, route fast only. */
  cudaOptions?: Record<string, string>;
}

/** Where and how a cell's processes start (src/lab/launchers.ts). */
export type Launcher =
  | { type: 'local' }
  | {
      type: 'ssh';
      host: string;
      user?: string;
      port?: number;
      /** The private key file (ssh -i). */
      key?: string;
      /** The known_hosts file the host is checked against (default: ssh's own). */
      knownHosts?: string;
      /** Where inputs, jobs and outputs go on the host (default /tmp/gpen-lab-remote). */
      workDir?: string;
      /** How gpen-lab starts there (default ['gpen-lab']). */
      gpenLab?: string[];
    }
  | {
      type: 'docker';
      image: string;
      engine?: 'docker' | 'podman';
      /** docker's --gpus value; podman takes it as --device nvidia.com/gpu=VALUE. */
      gpus?: string;
      /** HOST:CONTAINER[:ro]. */
      volumes?: string[];
      env?: Record<string, string>;
      extraArgs?: string[];
    }
  | {
      /** A worker serving this BullMQ queue runs the cell (src/queue: `gpen-lab worker --queue NAME`). */
      type: 'queue';
      queue: string;
      /** Its Redis URL ($VAR allowed); default the lab's --redis. */
      redis?: string;
    };

/** A command cell's command: argv with {input}, {output} and {gpu} replaced, run once per fresh process. */
export interface CommandSpec {
  argv: string[];
  /** Its start-up and dependency stages, each a command that must exit 0. */
  probes?: { startup?: string[]; dependencies?: string[] };
  env?: Record<string, string>;
  /** Per process (default the lab's timeoutSec). */
  timeoutSec?: number;
}

export interface CellSpec {
  id: string;
  provider: Provider;
  /** fast (default): the measured-best binding and options for the provider; stock: onnxruntime-node's binding, the baseline. */
  route: Route;
  precision: Precision;
  /**
   * The ONNX Runtime build (runtime/builds.ts); default onnxruntime-node's, ort1.29-cuda13, whatever the driver:
   * a cell names its environment, and another build is a cell of its own (its id ends in the build).
   */
  runtime?: RuntimeBuild;
  session?: SessionOptions;
  /** Variables set for the cell's processes (LD_LIBRARY_PATH points a cell at another CUDA library set). */
  env?: Record<string, string>;
  /** Inputs for this cell instead of the lab's. */
  inputs?: string[];
  launcher?: Launcher;
  batch?: number;
  /** Set for a command cell: anything that restores a face, run as a command (provider, route and precision are labels). */
  command?: CommandSpec;
  /** A command cell's GPU use is sampled unless false. */
  gpu?: boolean;
  /** In a config: run the cell once on each of these GPUs (normalizeConfig makes one cell a GPU, -gpuN). */
  devices?: number[];
}

export interface MatrixSpec {
  provider?: Provider[];
  /** Default ['fast']. */
  route?: Route[];
  precision?: Precision[];
  /** Named environments: each becomes an axis value, its name part of the cell id. */
  env?: { name: string; vars: Record<string, string> }[];
  /** Runtime builds: each a cell of its own, its id ending in the build unless it is onnxruntime-node's. */
  runtime?: RuntimeBuild[];
  session?: SessionOptions;
}

export interface LabConfig {
  name?: string;
  inputs: string[];
  /** Inputs of GPU cells when they differ (the default lab gives GPU cells the whole photo). */
  gpuInputs?: string[];
  model: { file?: string; synthetic?: number; identity?: number; seed?: number };
  /** The inputs are aligned square faces: gpen-lab's cells run the GAN only (restore --aligned), as GPEN's own script. */
  aligned?: boolean;
  coldRuns: number;
  warmRuns: number;
  timeoutSec: number;
  reference?: string;
  cells: CellSpec[];
}

/** What the config file may say before defaults and the matrix are applied. */
export interface LabConfigInput extends Partial<Omit<LabConfig, 'cells'>> {
  cells?: ((Partial<CellSpec> & { provider: Provider }) | (Partial<CellSpec> & { id: string; command: CommandSpec }))[];
  matrix?: MatrixSpec;
}

export interface CellJob {
  cellId: string;
  run: number;
  provider: Provider;
  route: Route;
  precision: Precision;
  runtime?: RuntimeBuild;
  session?: SessionOptions;
  batch?: number;
  model: ModelSpec;
  inputs: string[];
  outDir: string;
  warmRuns: number;
  aligned?: boolean;
}

export type StageVerdict = { ok: boolean; reason: string | null } | null;

export interface RunRecord {
  run: number;
  ok: boolean;
  /** The stage reached: startup, dependencies, inference, output, warm, done. */
  stage: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  error: string | null;
  stderrTail: string;
  /** Milliseconds per stage of this fresh-process run, and the total from spawn to the image written. */
  stages_ms: Record<string, number>;
  total_ms: number | null;
  maxRssMiB: number | null;
}

export interface OutputAgreement {
  input: string;
  output: string;
  psnr: number;
  ssim: number;
  facePsnr: number | null;
  faceSsim: number | null;
}

export interface CellResult {
  id: string;
  status: 'done' | 'running';
  env: {
    provider: Provider;
    route?: Route;
    precision: Precision;
    /** Set for a cell of a build other than onnxruntime-node's. */
    runtime?: RuntimeBuild;
    session: SessionOptions;
    vars: Record<string, string>;
    /** The launcher, in words: "local", "ssh root@gpu-2:22", "docker IMAGE (--gpus all)". */
    launcher: string;
    /** Where the cell ran: this host's name, or the ssh host's. */
    host?: string;
    inputs: string[];
    /** A command cell's command as configured. */
    command?: CommandSpec;
  };
  stages: { startup: StageVerdict; dependencies: StageVerdict; inference: StageVerdict; output: StageVerdict };
  /** Provider asked for and what ran (from ONNX Runtime's profile). */
  provider: { asked: Provider; ran: string[] | null; knownByBinary: string[] | null };
  runs: RunRecord[];
  cold: { total: TimingStats | null; stages: Record<string, TimingStats> };
  warm: { total: TimingStats | null; stages: Record<string, TimingStats> };
  gpu: GpuSummary;
  output: {
    vsInput: OutputAgreement[];
    psnr: number | null;
    ssim: number | null;
    deltaDbVsReference: number | null;
    visuallyLossless: boolean | null;
    vsReference: { psnr: number; ssim: number; heatmap: string | null } | null;
  };
  doctor: {
    verdict: string;
    findings: Finding[];
    libraries: { soname: string; path: string | null; version: string | null }[];
    /** The CUDA library sets the cell's LD_LIBRARY_PATH adds to the lab's: which CUDA each is, what it holds. */
    sets?: LibrarySet[];
  } | null;
  restore: RestoreResult | null;
  /** A command cell's outputs, one per input (the last run's), compared like a restore's. */
  commandOutputs?: { input: string; output: string }[];
  /** Where the warm runs took a session of their own (a folder's workload on CUDA's fast route: the warm set): what it ran. */
  warmRoute?: RouteChoice;
  flags: string[];
  finishedAt: string | null;
}

export interface PairResult {
  a: string;
  b: string;
  psnr: number;
  ssim: number;
}

export interface LabResults {
  schema: typeof RESULTS_SCHEMA;
  startedAt: string;
  finishedAt: string | null;
  machine: Record<string, unknown>;
  config: LabConfig;
  reference: string | null;
  cells: CellResult[];
  pairs: PairResult[];
  recommendations: string[];
}
