# The GPU kernels of one ONNX Runtime CUDA run, timed by CUPTI (torch.profiler) in the same process: ONNX Runtime's
# own profile times launches, not kernels, and the GPU machine has no Nsight. The session is made through ONNX
# Runtime's C API (ctypes, the same libonnxruntime.so.1 and CUDA provider gpen-lab uses), input and output are torch
# tensors on the GPU, so a run is the graph's kernels and nothing else. Prints JSON: per kernel name the time per run
# and the count, and the kernels of one run in order with their durations.
# Usage (on the GPU machine, after setup): python3 scripts/kernel-profile.py MODEL.onnx BATCH [SIZE] [RUNS] [ALGO] [KEY=VALUE...]
# (KEY=VALUE: further CUDA provider options, e.g. prefer_nhwc=1)
import ctypes, json, os, sys, tempfile
import torch

model, batch = sys.argv[1], int(sys.argv[2])
size = int(sys.argv[3]) if len(sys.argv) > 3 else 512
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
algo = sys.argv[5] if len(sys.argv) > 5 else 'EXHAUSTIVE'
x = torch.rand(batch, 3, size, size, device='cuda') * 2 - 1
y = torch.empty_like(x)
torch.cuda.synchronize()

lib_dir = os.environ.get('ORT_DIR') or os.path.join(os.path.dirname(__file__), '..', 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64')
ort = ctypes.CDLL(os.path.join(lib_dir, 'libonnxruntime.so.1'), mode=ctypes.RTLD_GLOBAL)
ort.OrtGetApiBase.restype = ctypes.POINTER(ctypes.c_void_p * 2)
base = ort.OrtGetApiBase().contents
get_api = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint32)(base[0])
table = ctypes.cast(get_api(14), ctypes.POINTER(ctypes.c_void_p * 320)).contents
P = ctypes.c_void_p
def fn(i, *args):
    return ctypes.CFUNCTYPE(P, *args)(table[i])
get_error = ctypes.CFUNCTYPE(ctypes.c_char_p, P)(table[2])
def check(status, what):
    if status:
        raise RuntimeError(f'{what}: {get_error(status).decode()}')

env = P(); check(fn(3, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(P))(3, b'kp', ctypes.byref(env)), 'CreateEnv')
so = P(); check(fn(10, ctypes.POINTER(P))(ctypes.byref(so)), 'CreateSessionOptions')
cuda = P(); check(fn(205, ctypes.POINTER(P))(ctypes.byref(cuda)), 'CreateCUDAProviderOptions')
extra = [a.split('=', 1) for a in sys.argv[6:]]
keys = [b'device_id', b'cudnn_conv_algo_search'] + [k.encode() for k, _ in extra]
vals = [b'0', algo.encode()] + [v.encode() for _, v in extra]
K = (ctypes.c_char_p * len(keys))(*keys); V = (ctypes.c_char_p * len(vals))(*vals)
check(fn(206, P, ctypes.c_char_p * len(keys), ctypes.c_char_p * len(vals), ctypes.c_size_t)(cuda, K, V, len(keys)), 'UpdateCUDAProviderOptions')
check(fn(204, P, P)(so, cuda), 'AppendExecutionProvider_CUDA_V2')
sess = P(); check(fn(7, P, ctypes.c_char_p, P, ctypes.POINTER(P))(env, model.encode(), so, ctypes.byref(sess)), 'CreateSession')
info = P(); check(fn(68, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(P))(b'Cuda', 0, 0, 0, ctypes.byref(info)), 'CreateMemoryInfo')
def value(t):
    shape = (ctypes.c_int64 * 4)(*t.shape)
    v = P()
    check(fn(49, P, P, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(P))(
        info, P(t.data_ptr()), t.numel() * 4, shape, 4, 1, ctypes.byref(v)), 'CreateTensorWithDataAsOrtValue')
    return v
vin, vout = value(x), value(y)
run_fn = fn(9, P, P, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(P), ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t, ctypes.POINTER(P))
names_in = (ctypes.c_char_p * 1)(b'input'); names_out = (ctypes.c_char_p * 1)(b'output')
ins = (P * 1)(vin); outs = (P * 1)(vout)
def run():
    check(run_fn(sess, None, names_in, ins, 1, names_out, 1, outs), 'Run')
for _ in range(3):
    run()
torch.cuda.synchronize()
import time
t = time.perf_counter()
for _ in range(10):
    run()
torch.cuda.synchronize()
wall = (time.perf_counter() - t) / 10 * 1000

from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(runs):
        run()
    torch.cuda.synchronize()
trace = tempfile.mktemp(suffix='.json')
prof.export_chrome_trace(trace)
events = [e for e in json.load(open(trace))['traceEvents'] if e.get('cat') == 'kernel']
events.sort(key=lambda e: e['ts'])
per = {}
for e in events:
    k = e['name'][:160]
    a = per.setdefault(k, [0.0, 0])
    a[0] += e['dur']; a[1] += 1
total = sum(e['dur'] for e in events) / runs
n = len(events) // runs
one = [[e['name'][:100], round(e['dur'], 1), e.get('args', {}).get('grid'), e.get('args', {}).get('block')] for e in events[:n]]
print(json.dumps({
    'model': os.path.basename(model), 'batch': batch, 'algo': algo, 'options': dict(extra), 'runs': runs, 'wall_ms_per_run': round(wall, 3),
    'kernel_ms_per_run': round(total / 1000, 3), 'kernels_per_run': n,
    'by_name': sorted([[k, round(v[0] / runs / 1000, 3), v[1] // runs] for k, v in per.items()], key=lambda r: -r[1]),
    'one_run': one,
}))
