// The precisions a GPEN graph is built and run in: the model room builds them, the runtime room chooses among them.
export const PRECISIONS = ['fp32', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];
