// The WebGPU adapter probe on stub Vulkan loaders built at test time (cc -shared, one C file, a variant per -D flag) that
// check the create info they are given and write VkPhysicalDeviceProperties with its real x86-64 layout; then on the real
// loader restricted to lavapipe when both are installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probeWebgpuAdapter } from '../src/runtime/webgpu-adapter.js';
import { buildLib, requireCc } from './helpers/native.js';

const STUB_C = String.raw`
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct { int32_t sType; const void *pNext; const char *pApplicationName; uint32_t applicationVersion;
  const char *pEngineName; uint32_t engineVersion; uint32_t apiVersion; } AppInfo;
typedef struct { int32_t sType; const void *pNext; uint32_t flags; const AppInfo *pApplicationInfo;
  uint32_t enabledLayerCount; const char *const *ppEnabledLayerNames;
  uint32_t enabledExtensionCount; const char *const *ppEnabledExtensionNames; } CreateInfo;
/* VkPhysicalDeviceProperties: the leading fields, then VkPhysicalDeviceLimits (504 bytes, 8-aligned) and the sparse
   properties (5 x u32) */
typedef struct { uint32_t apiVersion, driverVersion, vendorID, deviceID; int32_t deviceType; char deviceName[256];
  uint8_t pipelineCacheUUID[16]; uint64_t limits[63]; uint32_t sparse[5]; } Props;
_Static_assert(offsetof(Props, deviceType) == 16, "deviceType");
_Static_assert(offsetof(Props, deviceName) == 20, "deviceName");
_Static_assert(offsetof(Props, limits) == 296, "limits");
_Static_assert(sizeof(Props) == 824, "size");

#define VER(a, b, c) (((uint32_t)(a) << 22) | ((uint32_t)(b) << 12) | (uint32_t)(c))
typedef struct { const char *name; int32_t type; uint32_t vendor, device, api; } Dev;
static const Dev __attribute__((unused)) LLVMPIPE = { "llvmpipe (LLVM 15.0.6, 256 bits)", 4, 0x10005, 0, VER(1, 3, 230) };
static const Dev __attribute__((unused)) H100 = { "NVIDIA H100 80GB HBM3", 2, 0x10de, 0x2330, VER(1, 3, 280) };
static const Dev __attribute__((unused)) IGPU = { "Intel(R) UHD Graphics 770", 1, 0x8086, 0x4680, VER(1, 3, 255) };
#if defined(TWO)
static const Dev *DEVS[] __attribute__((unused)) = { &LLVMPIPE, &H100 };
#elif defined(MIXED)
static const Dev *DEVS[] __attribute__((unused)) = { &LLVMPIPE, &IGPU, &H100 };
#elif defined(CPU_ONLY)
static const Dev *DEVS[] __attribute__((unused)) = { &LLVMPIPE };
#else
static const Dev *DEVS[] __attribute__((unused)) = { NULL };
#endif
#if defined(NONE) || defined(CREATE_FAILS)
#define NDEV 0u
#else
#define NDEV (uint32_t)(sizeof(DEVS) / sizeof(DEVS[0]))
#endif

static int instance;

/* answers VK_ERROR_INITIALIZATION_FAILED (-3) to a create info laid out other than Vulkan's */
int32_t vkCreateInstance(const CreateInfo *ci, const void *alloc, void **out) {
#ifdef CREATE_FAILS
  (void)ci; (void)alloc; (void)out;
  return -9;
#else
  if (!ci || ci->sType != 1 || ci->pNext || ci->flags || ci->enabledLayerCount || ci->enabledExtensionCount || alloc) return -3;
  const AppInfo *a = ci->pApplicationInfo;
  if (!a || a->sType != 0 || a->pNext || a->apiVersion != VER(1, 1, 0) || !a->pApplicationName) return -3;
  *out = &instance;
  return 0;
#endif
}

void vkDestroyInstance(void *inst, const void *alloc) { (void)inst; (void)alloc; }

int32_t vkEnumeratePhysicalDevices(void *inst, uint32_t *count, void **devices) {
  if (inst != &instance) return -3;
  if (!devices) { *count = NDEV; return 0; }
  uint32_t n = *count < NDEV ? *count : NDEV;
  for (uint32_t i = 0; i < n; i++) devices[i] = (void *)DEVS[i];
  *count = n;
  return n < NDEV ? 5 : 0;
}

void vkGetPhysicalDeviceProperties(void *device, Props *p) {
  const Dev *d = device;
  memset(p, 0xab, sizeof *p);
  p->apiVersion = d->api; p->driverVersion = VER(550, 54, 15); p->vendorID = d->vendor; p->deviceID = d->device;
  p->deviceType = d->type;
  memset(p->deviceName, 0, sizeof p->deviceName);
  strncpy(p->deviceName, d->name, sizeof p->deviceName - 1);
}
`;

let tmp: string;
before(() => {
  requireCc();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-vulkan-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A stub libvulkan.so.1 for one variant, in its own folder. */
const stub = (variant: string): string =>
  buildLib(path.join(tmp, variant), 'libvulkan.so.1', STUB_C, [`-D${variant}`, '-Wall', '-Werror']);

const LLVMPIPE = {
  name: 'llvmpipe (LLVM 15.0.6, 256 bits)',
  type: 'cpu',
  vendorId: 0x10005,
  deviceId: 0,
  apiVersion: '1.3.230',
} as const;
const H100 = {
  name: 'NVIDIA H100 80GB HBM3',
  type: 'discrete',
  vendorId: 0x10de,
  deviceId: 0x2330,
  apiVersion: '1.3.280',
} as const;

describe('the WebGPU adapter probe on stub Vulkan loaders', () => {
  it('a loader that is not there names the loader and how to install it', () => {
    const r = probeWebgpuAdapter({ library: path.join(tmp, 'absent', 'libvulkan.so.1') });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /Vulkan loader/);
    assert.match(r.reason, /apt install libvulkan1/);
    assert.deepEqual(r.devices, []);
  });

  it('a software and a discrete device: the discrete one is the adapter, both are listed', () => {
    const r = probeWebgpuAdapter({ library: stub('TWO') });
    assert.equal(r.ok, true, JSON.stringify(r));
    if (!r.ok) return;
    assert.deepEqual(r.device, H100);
    assert.deepEqual(r.devices, [LLVMPIPE, H100]);
  });

  it('discrete is preferred over an integrated device listed before it', () => {
    const r = probeWebgpuAdapter({ library: stub('MIXED') });
    assert.equal(r.ok, true, JSON.stringify(r));
    if (!r.ok) return;
    assert.equal(r.device.name, H100.name);
    assert.deepEqual(
      r.devices.map((d) => d.type),
      ['cpu', 'integrated', 'discrete'],
    );
  });

  it('only llvmpipe is a software adapter, never hardware', () => {
    const r = probeWebgpuAdapter({ library: stub('CPU_ONLY') });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /software adapter/);
    assert.ok(r.reason.includes(LLVMPIPE.name), r.reason);
    assert.deepEqual(r.devices, [LLVMPIPE]);
  });

  it('no devices at all', () => {
    const r = probeWebgpuAdapter({ library: stub('NONE') });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /no GPU/);
    assert.deepEqual(r.devices, []);
  });

  it('vkCreateInstance failing gives its VkResult', () => {
    const r = probeWebgpuAdapter({ library: stub('CREATE_FAILS') });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /vkCreateInstance/);
    assert.match(r.reason, /-9\b/);
    assert.match(r.reason, /VK_ERROR_INCOMPATIBLE_DRIVER/);
  });

  it('a library without the Vulkan functions is an answer, not a throw', () => {
    const lib = buildLib(path.join(tmp, 'unrelated'), 'libvulkan.so.1', 'int unrelated(void) { return 1; }');
    const r = probeWebgpuAdapter({ library: lib });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.match(r.reason, /vkCreateInstance/);
  });

  it('the answer for a library is kept: a second call returns the same result', () => {
    const lib = stub('TWO');
    assert.equal(probeWebgpuAdapter({ library: lib }), probeWebgpuAdapter({ library: lib }));
  });
});

const REAL_LOADER = '/usr/lib/x86_64-linux-gnu/libvulkan.so.1';
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
const lavapipeIcd = (): string | null => {
  for (const dir of ICD_DIRS) {
    const f = existsSync(dir) ? readdirSync(dir).find((n) => /^lvp_icd\b.*\.json$/.test(n)) : undefined;
    if (f) return path.join(dir, f);
  }
  return null;
};

describe('the WebGPU adapter probe on the real Vulkan loader', () => {
  it('with only lavapipe as the driver, the answer is a software adapter', (t) => {
    const icd = lavapipeIcd();
    if (!existsSync(REAL_LOADER) || !icd) {
      t.skip('needs libvulkan1 and lavapipe (apt-get install -y libvulkan1 mesa-vulkan-drivers)');
      return;
    }
    // the loader reads these at vkCreateInstance: lavapipe alone, whatever GPU drivers are installed beside it
    const saved = { VK_DRIVER_FILES: process.env.VK_DRIVER_FILES, VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES };
    process.env.VK_DRIVER_FILES = icd;
    process.env.VK_ICD_FILENAMES = icd;
    try {
      const r = probeWebgpuAdapter({ library: REAL_LOADER });
      assert.equal(r.ok, false, JSON.stringify(r));
      if (r.ok) return;
      assert.match(r.reason, /software/);
      assert.ok(r.devices.length > 0 && r.devices.every((d) => d.type === 'cpu'), JSON.stringify(r.devices));
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('whatever drivers are installed, a CPU device is never the adapter', (t) => {
    if (!existsSync(REAL_LOADER)) {
      t.skip('needs libvulkan1');
      return;
    }
    const r = probeWebgpuAdapter();
    if (r.ok) assert.notEqual(r.device.type, 'cpu', JSON.stringify(r));
    else assert.equal(typeof r.reason, 'string');
  });
});
