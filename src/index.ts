// gpen-lab as a library: the model (readers, architecture, graph builder, synthetic weights), the runtime layer and
// the coded errors. The CLI is built on exactly this API.
export { GpenLabError, ERROR_CODES, isGpenLabError } from './errors.js';
export type { ErrorCode, ErrorDetails } from './errors.js';
export { GPEN_SIZES, OFFICIAL_SIZES, OFFICIAL_ARCH, channels, countParams, defaultArch, expectedShapes, inferArch } from './model/arch.js';
export type { GpenArch } from './model/arch.js';
export { buildGpenOnnx, buildIdentityOnnx, PRECISIONS } from './model/gpen-graph.js';
export type { BuildOptions, Precision } from './model/gpen-graph.js';
export { readPth } from './model/pth.js';
export type { Checkpoint } from './model/pth.js';
export { inspectOnnx } from './model/onnx-file.js';
export type { OnnxModelInfo } from './model/onnx-file.js';
export { synthStateDict } from './model/synth.js';
export { convertPth, describeModel, loadCheckpoint, prepareModel, synthesizeGpen, synthesizeIdentity } from './model/registry.js';
export type { ModelInfo, ModelSpec, PreparedModel } from './model/registry.js';
export type { HostTensor, DType } from './io/tensor.js';
export { PROVIDERS, PROVIDER_SPECS, parseProvider } from './runtime/providers.js';
export type { Provider } from './runtime/providers.js';
export { ModelSession, knownProviders, runtimeVersion } from './runtime/session.js';
export type { RunResult, SessionConfig } from './runtime/session.js';
export type { Placement } from './runtime/profile.js';
export { readNpy, writeNpy, decodeNpy, encodeNpy } from './io/npy.js';
export { timingStats, formatStats } from './metrics/stats.js';
export type { TimingStats } from './metrics/stats.js';
