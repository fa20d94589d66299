// The GPU kernels of gpen-lab's FusedAct operator (gpen-ops.ts), written as PTX text: the NVIDIA driver compiles PTX
// for whatever GPU it runs (cuModuleLoadData), so no CUDA compiler is needed on the user's machine or here. One kernel
// does what took four passes over a styled convolution's output in ONNX Runtime (Concat, the per-sample bias Add,
// LeakyRelu or PRelu, the next layer's modulation Mul):
//   y[n, p, c] = prelu(cat(x, f)[n, p, c] + bias[n, c], slope[c]) * scale[n, c]      (NHWC; f and scale optional)
// Generated rather than written out: each vector width unrolls the same per-element steps.

/** Kernel names by element type and vector width (elements per thread). */
export const ACT_KERNELS = {
  half8: 'gpen_act_h8',
  half1: 'gpen_act_h1',
  float4: 'gpen_act_f4',
  float1: 'gpen_act_f1',
} as const;

/** The kernels' parameters, in order (pointers are u64, the rest u32). */
export const ACT_PARAMS = [
  'x',
  'f',
  'bias',
  'slope',
  'scale',
  'out',
  'c1',
  'c2',
  'hw',
  'count',
  'bstride',
  'sstride',
] as const;

function kernel(name: string, half: boolean, vec: number): string {
  const eb = half ? 2 : 4; // bytes per element
  const L: string[] = [];
  const e = (s: string) => L.push(`  ${s}`);
  L.push(`.visible .entry ${name}(`);
  L.push(ACT_PARAMS.map((p, i) => `  .param .${i < 6 ? 'u64' : 'u32'} p_${p}`).join(',\n'));
  L.push(') {');
  e('.reg .pred %p<8>;');
  e('.reg .b32 %r<64>;');
  e('.reg .b64 %rd<32>;');
  e('.reg .f32 %f<80>;');
  e('.reg .b16 %h<16>;');
  // g: this thread's group of `vec` elements; count: the number of groups
  e('mov.u32 %r1, %ctaid.x;');
  e('mov.u32 %r2, %ntid.x;');
  e('mov.u32 %r3, %tid.x;');
  e('mad.lo.u32 %r4, %r1, %r2, %r3;');
  e('ld.param.u32 %r5, [p_count];');
  e('setp.ge.u32 %p1, %r4, %r5;');
  e('@%p1 bra DONE;');
  e('ld.param.u32 %r6, [p_c1];');
  e('ld.param.u32 %r7, [p_c2];');
  e('add.u32 %r8, %r6, %r7;'); // ct
  e(vec === 1 ? 'mov.u32 %r9, %r4;' : `mul.lo.u32 %r9, %r4, ${vec};`); // first element index
  e('rem.u32 %r10, %r9, %r8;'); // c
  e('div.u32 %r11, %r9, %r8;'); // pixel (n * hw + p)
  e('ld.param.u32 %r12, [p_hw];');
  e('div.u32 %r13, %r11, %r12;'); // n
  // the source: x's channel c, or f's channel c - c1 (a group never straddles the two: c1 % vec == 0)
  e('setp.lt.u32 %p2, %r10, %r6;');
  e('@%p2 bra FROM_X;');
  e('sub.u32 %r14, %r10, %r6;');
  e('ld.param.u64 %rd1, [p_f];');
  e('mul.wide.u32 %rd2, %r11, %r7;');
  e('bra.uni LOAD;');
  L.push('FROM_X:');
  e('mov.u32 %r14, %r10;');
  e('ld.param.u64 %rd1, [p_x];');
  e('mul.wide.u32 %rd2, %r11, %r6;');
  L.push('LOAD:');
  e('cvt.u64.u32 %rd3, %r14;');
  e('add.u64 %rd2, %rd2, %rd3;');
  e(`mul.lo.u64 %rd2, %rd2, ${eb};`);
  e('add.u64 %rd1, %rd1, %rd2;');
  // the values as f32 in %f0..
  if (half && vec === 8) {
    e('ld.global.nc.v4.b32 {%r20, %r21, %r22, %r23}, [%rd1];');
    for (let i = 0; i < 4; i++) {
      e(`mov.b32 {%h${2 * i}, %h${2 * i + 1}}, %r${20 + i};`);
      e(`cvt.f32.f16 %f${2 * i}, %h${2 * i};`);
      e(`cvt.f32.f16 %f${2 * i + 1}, %h${2 * i + 1};`);
    }
  } else if (half) {
    e('ld.global.nc.b16 %h0, [%rd1];');
    e('cvt.f32.f16 %f0, %h0;');
  } else if (vec === 4) {
    e('ld.global.nc.v4.f32 {%f0, %f1, %f2, %f3}, [%rd1];');
  } else {
    e('ld.global.nc.f32 %f0, [%rd1];');
  }
  // per-channel vectors: bias [n * bstride + c], slope [c], scale [n * sstride + c] (f32)
  const loadVec = (base: string, first: number) => {
    if (vec === 1) e(`ld.global.nc.f32 %f${first}, [${base}];`);
    else
      for (let i = 0; i < vec; i += 4)
        e(
          `ld.global.nc.v4.f32 {%f${first + i}, %f${first + i + 1}, %f${first + i + 2}, %f${first + i + 3}}, [${base}+${i * 4}];`,
        );
  };
  e('cvt.u64.u32 %rd4, %r10;'); // c
  e('ld.param.u32 %r15, [p_bstride];');
  e('mul.wide.u32 %rd5, %r13, %r15;');
  e('add.u64 %rd5, %rd5, %rd4;');
  e('shl.b64 %rd5, %rd5, 2;');
  e('ld.param.u64 %rd6, [p_bias];');
  e('add.u64 %rd6, %rd6, %rd5;');
  loadVec('%rd6', 16);
  e('shl.b64 %rd7, %rd4, 2;');
  e('ld.param.u64 %rd8, [p_slope];');
  e('add.u64 %rd8, %rd8, %rd7;');
  loadVec('%rd8', 32);
  e('ld.param.u64 %rd9, [p_scale];');
  e('setp.ne.u64 %p3, %rd9, 0;');
  e('@!%p3 bra COMPUTE;');
  e('ld.param.u32 %r16, [p_sstride];');
  e('mul.wide.u32 %rd10, %r13, %r16;');
  e('add.u64 %rd10, %rd10, %rd4;');
  e('shl.b64 %rd10, %rd10, 2;');
  e('add.u64 %rd9, %rd9, %rd10;');
  loadVec('%rd9', 48);
  L.push('COMPUTE:');
  for (let i = 0; i < vec; i++) {
    e(`add.f32 %f${i}, %f${i}, %f${16 + i};`);
    e(`mul.f32 %f${64 + i}, %f${i}, %f${32 + i};`);
    e(`setp.lt.f32 %p4, %f${i}, 0f00000000;`);
    e(`selp.f32 %f${i}, %f${64 + i}, %f${i}, %p4;`);
    e(`@%p3 mul.f32 %f${i}, %f${i}, %f${48 + i};`);
  }
  // out [pixel * ct + c]
  e('mul.wide.u32 %rd11, %r11, %r8;');
  e('add.u64 %rd11, %rd11, %rd4;');
  e(`mul.lo.u64 %rd11, %rd11, ${eb};`);
  e('ld.param.u64 %rd12, [p_out];');
  e('add.u64 %rd12, %rd12, %rd11;');
  if (half && vec === 8) {
    for (let i = 0; i < 4; i++) {
      e(`cvt.rn.f16.f32 %h${2 * i}, %f${2 * i};`);
      e(`cvt.rn.f16.f32 %h${2 * i + 1}, %f${2 * i + 1};`);
      e(`mov.b32 %r${20 + i}, {%h${2 * i}, %h${2 * i + 1}};`);
    }
    e('st.global.v4.b32 [%rd12], {%r20, %r21, %r22, %r23};');
  } else if (half) {
    e('cvt.rn.f16.f32 %h0, %f0;');
    e('st.global.b16 [%rd12], %h0;');
  } else if (vec === 4) {
    e('st.global.v4.f32 [%rd12], {%f0, %f1, %f2, %f3};');
  } else {
    e('st.global.f32 [%rd12], %f0;');
  }
  L.push('DONE:');
  e('ret;');
  L.push('}');
  return L.join('\n');
}

/** The PTX module of FusedAct's four kernels (ISA 7.0, sm_70 and newer), NUL-terminated for cuModuleLoadData. */
export function actPtx(): string {
  return [
    '.version 7.0',
    '.target sm_70',
    '.address_size 64',
    '',
    kernel(ACT_KERNELS.half8, true, 8),
    kernel(ACT_KERNELS.half1, true, 1),
    kernel(ACT_KERNELS.float4, false, 4),
    kernel(ACT_KERNELS.float1, false, 1),
    '',
  ].join('\n');
}

/** Which kernel and how many groups for a run: the vector form where both inputs' channel counts allow it. */
export function actLaunch(
  half: boolean,
  c1: number,
  c2: number,
  elements: number,
): { kernel: string; vec: number; count: number } {
  const wide = half ? 8 : 4;
  const vec = c1 % wide === 0 && c2 % wide === 0 ? wide : 1;
  const kernel = half
    ? vec === 8
      ? ACT_KERNELS.half8
      : ACT_KERNELS.half1
    : vec === 4
      ? ACT_KERNELS.float4
      : ACT_KERNELS.float1;
  return { kernel, vec, count: elements / vec };
}
