// gpen-lab's own ONNX operators: the graphs the model room builds name them, the runtime room registers their
// kernels; both read the names from here.
export const GPEN_OPS = {
  domain: 'gpen_lab',
  version: 1,
  fusedAct: { fp32: 'FusedAct', fp16: 'FusedActHalf' },
} as const;
