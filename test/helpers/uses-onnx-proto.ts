// For test/imports.test.ts: a module that imports onnx-proto statically, as the ONNX modules did before it was loaded
// on first use (the check must see such an import).
import onnxProto from 'onnx-proto';

export const modelProto = onnxProto.onnx.ModelProto;
