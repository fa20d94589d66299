// Whether this machine has a hardware GPU adapter for ONNX Runtime's WebGPU provider, answered without a session:
// Dawn reaches the GPU through Vulkan on Linux, so the Vulkan loader's physical devices are the adapters it could pick.
// A software rasteriser (llvmpipe/lavapipe, SwiftShader) is never counted as hardware.
import { existsSync } from 'node:fs';
import koffi from './koffi.js';

export interface VulkanDevice {
  name: string;
  type: 'integrated' | 'discrete' | 'virtual' | 'cpu' | 'other';
  vendorId: number;
  deviceId: number;
  /** the device's Vulkan version, "1.3.280" */
  apiVersion: string;
}

export type AdapterProbe =
  { ok: true; device: VulkanDevice; devices: VulkanDevice[] } | { ok: false; reason: string; devices: VulkanDevice[] };

const DEFAULT_LIBRARY = 'libvulkan.so.1';

// VkPhysicalDeviceType: 0 other, 1 integrated, 2 discrete, 3 virtual, 4 cpu
const DEVICE_TYPES: VulkanDevice['type'][] = ['other', 'integrated', 'discrete', 'virtual', 'cpu'];

// software rasterisers by name, in case one reports a type other than CPU
const SOFTWARE_NAME = /llvmpipe|lavapipe|swiftshader|softpipe/i;

const VK_RESULTS: Record<number, string> = {
  [-1]: 'VK_ERROR_OUT_OF_HOST_MEMORY',
  [-2]: 'VK_ERROR_OUT_OF_DEVICE_MEMORY',
  [-3]: 'VK_ERROR_INITIALIZATION_FAILED',
  [-4]: 'VK_ERROR_DEVICE_LOST',
  [-6]: 'VK_ERROR_LAYER_NOT_PRESENT',
  [-7]: 'VK_ERROR_EXTENSION_NOT_PRESENT',
  [-9]: 'no Vulkan driver: VK_ERROR_INCOMPATIBLE_DRIVER',
  [-13]: 'VK_ERROR_UNKNOWN',
};

const vkFailure = (call: string, rc: number): string => {
  const name = VK_RESULTS[rc];
  return `${call} failed with VkResult ${rc}${name ? ` (${name})` : ''}`;
};

// koffi type names are global to the process: declared once, on first use
type CType = ReturnType<typeof koffi.struct>;
type Fn = (...args: unknown[]) => unknown;
let types: { AppInfo: CType; CreateInfo: CType; Props: CType } | null = null;
function vkTypes(): NonNullable<typeof types> {
  if (types) return types;
  const AppInfo = koffi.struct('gpenVkApplicationInfo', {
    sType: 'int32_t',
    pNext: 'void *',
    pApplicationName: 'const char *',
    applicationVersion: 'uint32_t',
    pEngineName: 'const char *',
    engineVersion: 'uint32_t',
    apiVersion: 'uint32_t',
  });
  const CreateInfo = koffi.struct('gpenVkInstanceCreateInfo', {
    sType: 'int32_t',
    pNext: 'void *',
    flags: 'uint32_t',
    pApplicationInfo: koffi.pointer(AppInfo),
    enabledLayerCount: 'uint32_t',
    ppEnabledLayerNames: 'void *',
    enabledExtensionCount: 'uint32_t',
    ppEnabledExtensionNames: 'void *',
  });
  // The leading fields of VkPhysicalDeviceProperties at their real offsets; the tail stands for VkPhysicalDeviceLimits
  // and VkPhysicalDeviceSparseProperties (824 bytes in all on x86-64) and is oversized so the driver's write fits.
  const Props = koffi.struct('gpenVkPhysicalDeviceProperties', {
    apiVersion: 'uint32_t',
    driverVersion: 'uint32_t',
    vendorID: 'uint32_t',
    deviceID: 'uint32_t',
    deviceType: 'int32_t',
    deviceName: koffi.array('char', 256, 'String'),
    pipelineCacheUUID: koffi.array('uint8_t', 16, 'Typed'),
    tail: [8, koffi.array('uint8_t', 1536, 'Typed')],
  });
  types = { AppInfo, CreateInfo, Props };
  return types;
}

const VK_API_VERSION_1_1 = (1 << 22) | (1 << 12);
const versionString = (v: number): string => `${(v >>> 22) & 0x7f}.${(v >>> 12) & 0x3ff}.${v & 0xfff}`;

/** Discrete first, else the first other non-software device; null when only software adapters (or none) exist. */
function pickAdapter(devices: VulkanDevice[]): VulkanDevice | null {
  const hardware = devices.filter((d) => d.type !== 'cpu' && !SOFTWARE_NAME.test(d.name));
  return hardware.find((d) => d.type === 'discrete') ?? hardware[0] ?? null;
}

function loadFailure(library: string, err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  // koffi's message drops the file name, so a path that exists but cannot open means a dependency is missing
  if (/No such file or directory/.test(msg) && (!library.includes('/') || !existsSync(library))) {
    return `${library} (the Vulkan loader) is not installed: apt install libvulkan1 and the GPU vendor's Vulkan driver`;
  }
  return `${library} (the Vulkan loader) cannot be loaded: ${msg.replace(/^Failed to load shared library:\s*/, '')}`;
}

function enumerate(library: string): AdapterProbe {
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(library);
  } catch (err) {
    return { ok: false, reason: loadFailure(library, err), devices: [] };
  }
  const { CreateInfo, Props } = vkTypes();
  let fns: Record<'create' | 'destroy' | 'enumerate' | 'props', Fn>;
  try {
    fns = {
      create: lib.func('vkCreateInstance', 'int32_t', [
        koffi.pointer(CreateInfo),
        'void *',
        koffi.out(koffi.pointer('void *')),
      ]),
      destroy: lib.func('void vkDestroyInstance(void *instance, void *allocator)'),
      enumerate: lib.func('int32_t vkEnumeratePhysicalDevices(void *instance, _Inout_ uint32_t *count, void *devices)'),
      props: lib.func('void vkGetPhysicalDeviceProperties(void *device, void *properties)'),
    };
  } catch (err) {
    return {
      ok: false,
      reason: `${library} is not a usable Vulkan loader: ${err instanceof Error ? err.message : String(err)}`,
      devices: [],
    };
  }

  const instance: unknown[] = [null];
  const info = {
    sType: 1,
    pNext: null,
    flags: 0,
    pApplicationInfo: {
      sType: 0,
      pNext: null,
      pApplicationName: 'gpen-lab',
      applicationVersion: 1,
      pEngineName: 'gpen-lab',
      engineVersion: 1,
      apiVersion: VK_API_VERSION_1_1,
    },
    enabledLayerCount: 0,
    ppEnabledLayerNames: null,
    enabledExtensionCount: 0,
    ppEnabledExtensionNames: null,
  };
  const rc = fns.create(info, null, instance) as number;
  if (rc < 0) return { ok: false, reason: vkFailure('vkCreateInstance', rc), devices: [] };
  if (!instance[0]) return { ok: false, reason: 'vkCreateInstance returned no instance', devices: [] };

  try {
    const count = [0];
    let r = fns.enumerate(instance[0], count, null) as number;
    if (r < 0) return { ok: false, reason: vkFailure('vkEnumeratePhysicalDevices', r), devices: [] };
    if (count[0] === 0) return { ok: false, reason: 'Vulkan finds no GPU', devices: [] };
    const handles = Buffer.alloc(count[0] * koffi.sizeof('void *'));
    // VK_INCOMPLETE (5) still fills the array and sets count to what it wrote
    r = fns.enumerate(instance[0], count, handles) as number;
    if (r < 0) return { ok: false, reason: vkFailure('vkEnumeratePhysicalDevices', r), devices: [] };
    if (count[0] === 0) return { ok: false, reason: 'Vulkan finds no GPU', devices: [] };
    const ptrs = koffi.decode(handles, koffi.array('void *', count[0])) as unknown[];

    const devices = ptrs.map((p): VulkanDevice => {
      const buf = Buffer.alloc(koffi.sizeof(Props));
      fns.props(p, buf);
      const d = koffi.decode(buf, Props) as {
        apiVersion: number;
        vendorID: number;
        deviceID: number;
        deviceType: number;
        deviceName: string;
      };
      const type = DEVICE_TYPES[d.deviceType] ?? 'other';
      return {
        name: d.deviceName,
        type,
        vendorId: d.vendorID,
        deviceId: d.deviceID,
        apiVersion: versionString(d.apiVersion),
      };
    });
    const device = pickAdapter(devices);
    if (device) return { ok: true, device, devices };
    const soft = devices.map((d) => `${d.name} (${d.type})`).join(', ');
    return { ok: false, reason: `only a software adapter: ${soft}`, devices };
  } finally {
    fns.destroy(instance[0], null);
  }
}

const cache = new Map<string, AdapterProbe>();

/** Enumerates Vulkan physical devices through libvulkan.so.1 (koffi); the first non-CPU device (discrete preferred) is the adapter. */
export function probeWebgpuAdapter(opts?: { library?: string }): AdapterProbe {
  const library = opts?.library ?? DEFAULT_LIBRARY;
  let result = cache.get(library);
  if (!result) {
    try {
      result = enumerate(library);
    } catch (err) {
      result = {
        ok: false,
        reason: `probing Vulkan through ${library} failed: ${err instanceof Error ? err.message : String(err)}`,
        devices: [],
      };
    }
    cache.set(library, result);
  }
  return result;
}
