"""The official PyTorch GPEN as a lab command cell: restores one aligned face (the input resized to the model's size)
with given weights and writes the result, printing gpen-lab's protocol lines (docs/lab.md, Command cells) so that its
stages and warm runs are reported beside gpen-lab's own cells.

Needs the upstream model code (github.com/yangxy/GPEN, its face_model/ folder) on GPEN_SRC or beside this file.
  python restore_face.py --weights GPEN-BFR-512.pth --input face.png --output out.png [--size 512] [--warm 5] [--cpu]
The image is read and written with OpenCV (BGR), turned to RGB in [-1, 1] and back as upstream's face_gan.py does.
"""
import argparse, os, sys, time

t_start = time.perf_counter()
ap = argparse.ArgumentParser()
ap.add_argument('--weights', required=True); ap.add_argument('--input', required=True)
ap.add_argument('--output', required=True); ap.add_argument('--size', type=int, default=512)
ap.add_argument('--warm', type=int, default=0); ap.add_argument('--cpu', action='store_true')
a = ap.parse_args()
sys.path.insert(0, os.environ.get('GPEN_SRC', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'face_model')))
import cv2, numpy as np, torch  # noqa: E402

def stage(name, t0):
    print(f'@@gpen-lab stage {name} {(time.perf_counter() - t0) * 1000:.1f}', flush=True)

stage('module', t_start)
device = 'cpu' if a.cpu or not torch.cuda.is_available() else 'cuda'
t = time.perf_counter()
real = torch.cuda.is_available
torch.cuda.is_available = lambda: False  # upstream compiles its fused ops at import when CUDA is there: native ops
import gpen_model as gm  # noqa: E402
torch.cuda.is_available = real
official = {256: (1, 0.5), 512: (2, 1.0), 1024: (2, 1.0), 2048: (2, 1.0)}
cm, narrow = official[a.size]
m = gm.FullGenerator(a.size, 512, 8, cm, narrow=narrow, device='cpu')
m.load_state_dict(torch.load(a.weights, map_location='cpu'))
m = m.to(device).eval()
stage('model', t)

t = time.perf_counter()
img = cv2.imread(a.input, cv2.IMREAD_COLOR)
if img is None:
    sys.exit(f'{a.input}: not an image OpenCV reads')
img = cv2.resize(img, (a.size, a.size))
# as upstream's face_gan.py: [-1, 1], BGR to RGB
x = (torch.from_numpy(img.astype(np.float32) / 255.0).to(device) - 0.5) / 0.5
x = x.permute(2, 0, 1).unsqueeze(0).flip(1)
stage('decode', t)

def run():
    with torch.no_grad():
        y = m(x)[0]
    if device == 'cuda':
        torch.cuda.synchronize()
    return y

def to_image(y):
    # as upstream's tensor2img: RGB to BGR, clipped to [0, 1], scaled and truncated to 8 bits
    return (np.clip((y[0] * 0.5 + 0.5).permute(1, 2, 0).flip(2).float().cpu().numpy(), 0, 1) * 255).astype(np.uint8)

t = time.perf_counter()
y = run()
stage('infer', t)
t = time.perf_counter()
os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
if not cv2.imwrite(a.output, to_image(y)):
    sys.exit(f'{a.output}: OpenCV could not write it')
stage('write', t)
# a warm run is a whole image, as gpen-lab's cells time theirs: read, infer, write (beside the output)
warm_out = os.path.join(os.path.dirname(os.path.abspath(a.output)), '.warm.png')
for _ in range(a.warm):
    t = time.perf_counter()
    img = cv2.resize(cv2.imread(a.input, cv2.IMREAD_COLOR), (a.size, a.size))
    x = ((torch.from_numpy(img.astype(np.float32) / 255.0).to(device) - 0.5) / 0.5).permute(2, 0, 1).unsqueeze(0).flip(1)
    cv2.imwrite(warm_out, to_image(run()))
    print(f'@@gpen-lab warm {(time.perf_counter() - t) * 1000:.1f}', flush=True)
if a.warm:
    os.remove(warm_out)
