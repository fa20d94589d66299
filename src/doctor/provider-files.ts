// The provider files `gpen-lab setup cuda` installs for each runtime build, as recorded from its npm package
// (npm pack; names, sizes and sha256 of the files under package/Plugins/Linux/x64). Both versions of the package
// have the same layout: the three libraries, each beside a Unity .meta file that is never installed.
import type { RuntimeBuild } from '../runtime/builds.js';

/** Where the libraries sit inside the package. */
export const PACKAGE_LIB_DIR = 'Plugins/Linux/x64';

export interface ProviderFile {
  name: string;
  sha256: string;
  bytes: number;
  /** Installed unless --no-tensorrt. */
  optional: boolean;
}

export interface ProviderPackage {
  /** What `npm pack` fetches, in words (the progress line). */
  size: string;
  files: readonly ProviderFile[];
}

export const PROVIDER_PACKAGES: Record<RuntimeBuild, ProviderPackage> = {
  // com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (npm pack, 2026-11-24)
  'ort1.29-cuda13': {
    size: 'about 230 MB unpacked',
    files: [
      {
        name: 'libonnxruntime_providers_shared.so',
        sha256: 'c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772',
        bytes: 14632,
        optional: false,
      },
      {
        name: 'libonnxruntime_providers_cuda.so',
        sha256: '56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037',
        bytes: 229780440,
        optional: false,
      },
      {
        name: 'libonnxruntime_providers_tensorrt.so',
        sha256: 'ef6071798a339038ad66c428fb1a809cf8e499bffc3b6870e4e8bc4f4c6a6320',
        bytes: 859144,
        optional: true,
      },
    ],
  },
  // com.github.asus4.onnxruntime.linux-x64-gpu@0.2.1 (npm pack, 2026-12-07): onnxruntime 1.19.2, CUDA 12.2's PTX
  'ort1.19-cuda12': {
    size: '187 MB, 535 MB unpacked',
    files: [
      {
        name: 'libonnxruntime_providers_shared.so',
        sha256: 'f9400f9550e63513760f33a5c259b69fe93373865933fea5823b74c0036c4d2a',
        bytes: 14632,
        optional: false,
      },
      {
        name: 'libonnxruntime_providers_cuda.so',
        sha256: '8bb3d8221d62241b2ba3dedc3bb1281fbdcaaf4d9ea1884d88662c339a1562ce',
        bytes: 533992584,
        optional: false,
      },
      {
        name: 'libonnxruntime_providers_tensorrt.so',
        sha256: 'fbe023d5503c3ffcdd3431c6378b987ee6931be2414f6f3d2c4dc9f67b2f4514',
        bytes: 772912,
        optional: true,
      },
    ],
  },
};
