// gpen-lab as a library: the Restorer (the whole pipeline), the detector, the lab, the doctor, the model (readers,
// architecture, graph builder, synthetic weights), the runtime layer and the coded errors. The CLI is built on it.
export { GpenLabError, ERROR_CODES, isGpenLabError } from './errors.js';
export type { ErrorCode, ErrorDetails } from './errors.js';
export {
  GPEN_SIZES,
  OFFICIAL_SIZES,
  OFFICIAL_ARCH,
  channels,
  countParams,
  defaultArch,
  expectedShapes,
  inferArch,
} from './model/arch.js';
export type { GpenArch } from './model/arch.js';
export { buildGpenOnnx, buildIdentityOnnx, PRECISIONS } from './model/gpen-graph.js';
export type { BuildOptions, Precision } from './model/gpen-graph.js';
export { readPth } from './model/pth.js';
export type { Checkpoint } from './model/pth.js';
export { inspectOnnx } from './model/onnx-file.js';
export type { OnnxModelInfo } from './model/onnx-file.js';
export { synthStateDict } from './model/synth.js';
export {
  convertPth,
  describeModel,
  loadCheckpoint,
  prepareModel,
  synthesizeGpen,
  synthesizeIdentity,
} from './model/registry.js';
export type { ModelInfo, ModelSpec, PreparedModel } from './model/registry.js';
export type { HostTensor, DType } from './io/tensor.js';
export { PROVIDERS, PROVIDER_SPECS, parseProvider } from './runtime/providers.js';
export type { Provider } from './runtime/providers.js';
export { ModelSession, knownProviders, runtimeVersion } from './runtime/session.js';
export { RUNTIME_BUILDS, BUILD_SPECS } from './runtime/builds.js';
export type { RuntimeBuild } from './runtime/builds.js';
export type { RunResult, SessionConfig } from './runtime/session.js';
export type { Placement } from './runtime/profile.js';
export { readNpy, writeNpy, decodeNpy, encodeNpy } from './io/npy.js';
export { timingStats, formatStats } from './metrics/stats.js';
export type { TimingStats } from './metrics/stats.js';
// the pipeline, the detector, the lab and the doctor
export { Restorer } from './face/restore.js';
export type { RestoreOptions, RestoreResult } from './face/restore.js';
export { createBlazeFace } from './face/blazeface.js';
export type { BlazeFaceOptions } from './face/blazeface.js';
export type { FaceDetector } from './face/types.js';
export { runLab } from './lab/runner.js';
export type { LabOptions } from './lab/runner.js';
export { runDoctor } from './doctor/index.js';
export type { DoctorOptions, DoctorReport } from './doctor/index.js';
export { FAILURE_KINDS, EXIT_CODES, toGpenLabError } from './errors.js';
export type { FailureKind } from './errors.js';
