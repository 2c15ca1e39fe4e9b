// Tensor-core building blocks shared by the tiled kernels (flash.cuh, lightning.cuh, moe.cuh):
// warp-level mma.sync (PTX ISA "Warp-level matrix multiply-accumulate instructions", shapes
// m16n8k16 for f16/bf16 and m16n8k32 for FP8), ldmatrix, cp.async, and the fragment layouts.
//
// Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"), lane = 4*g + t
// (g = lane >> 2 in 0..7, t = lane & 3 in 0..3):
//   A (16x16, row major), 4 regs of 2 halves: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..),
//                                              a3 = (g+8, 2t+8..)
//   B (16x8, "col": B[k][n]), 2 regs:          b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C/D (16x8, f32), 4 regs:                   c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
// A register holds its two 16-bit values low half first (the lower column / k index).
//
// ldmatrix.x4 loads four 8x8 16-bit tiles: lanes 8i..8i+7 give the row addresses of tile i, and
// each lane receives, for tile i, register i holding (row lane/4, columns 2*(lane%4)..+1) - which is
// exactly the A fragment when the tiles are (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7,
// k 8-15), (rows 8-15, k 8-15). With .trans each tile is transposed on the way.
//
// Everything compiles for sm_80 and up (the CI builds sm_80 PTX and sm_90a cubins); FP8 mma needs
// sm_89, so its wrapper is guarded.
#pragma once
#ifndef RING_LINEAR_MMA_CUH
#define RING_LINEAR_MMA_CUH
#include "common.cuh"

// D = A * B + C, bf16 inputs, f32 accumulators (in place on c).
RL_DEV void mma_bf16_16816(float c[4], const u32 a[4], const u32 b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The same for f16 inputs.
RL_DEV void mma_f16_16816(float c[4], const u32 a[4], const u32 b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Dispatch on the storage traits of common.cuh (BF16 / F16).
template <typename T> struct Mma;
template <> struct Mma<BF16> {
  static RL_DEV void run(float c[4], const u32 a[4], const u32 b[2]) { mma_bf16_16816(c, a, b); }
};
template <> struct Mma<F16> {
  static RL_DEV void run(float c[4], const u32 a[4], const u32 b[2]) { mma_f16_16816(c, a, b); }
};

// FP8 m16n8k32 (E4M3 x E4M3), f32 accumulators; A regs hold 4 bytes of k each (PTX ISA layout for
// .e4m3: a0 = (g, 4t..4t+3), a1 = (g+8, 4t..), a2 = (g, 4t+16..), a3 = (g+8, 4t+16..); b0 = (k 4t..
// 4t+3, n g), b1 = (k 4t+16.., n g)).
RL_DEV void mma_e4m3_16832(float c[4], const u32 a[4], const u32 b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

// The other FP8 pairings of m16n8k32 (same fragment layouts; .e5m2 operands, sm_89+), and a
// dispatch on the storage traits of common.cuh (E4M3 / E5M2) for kernels templated on the formats.
RL_DEV void mma_e5m2_16832(float c[4], const u32 a[4], const u32 b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e5m2.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}
RL_DEV void mma_e4m3_e5m2_16832(float c[4], const u32 a[4], const u32 b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e5m2.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}
RL_DEV void mma_e5m2_e4m3_16832(float c[4], const u32 a[4], const u32 b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e5m2.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}
template <class A, class B> struct MmaFp8;
template <> struct MmaFp8<E4M3, E4M3> {
  static RL_DEV void run(float c[4], const u32 a[4], const u32 b[2]) { mma_e4m3_16832(c, a, b); }
};
template <> struct MmaFp8<E5M2, E5M2> {
  static RL_DEV void run(float c[4], const u32 a[4], const u32 b[2]) { mma_e5m2_16832(c, a, b); }
};
template <> struct MmaFp8<E4M3, E5M2> {
  static RL_DEV void run(float c[4], const u32 a[4], const u32 b[2]) { mma_e4m3_e5m2_16832(c, a, b); }
};
template <> struct MmaFp8<E5M2, E4M3> {
  static RL_DEV void run(float c[4], const u32 a[4], const u32 b[2]) { mma_e5m2_e4m3_16832(c, a, b); }
};

// Shared-memory address of a generic pointer (for ldmatrix / cp.async operands).
RL_DEV u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

RL_DEV void ldmatrix_x4(u32 r[4], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(row_addr)));
}
RL_DEV void ldmatrix_x4_trans(u32 r[4], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(row_addr)));
}
RL_DEV void ldmatrix_x2(u32 r[2], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(row_addr)));
}
RL_DEV void ldmatrix_x2_trans(u32 r[2], const void* row_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr(row_addr)));
}

// 16-byte asynchronous global -> shared copy; `bytes` < 16 zero-fills the rest (0 for padding
// rows past the end of a tensor: the source is not read).
RL_DEV void cp_async16(void* smem, const void* gmem, int bytes = 16) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(bytes));
}
RL_DEV void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N committed groups are still in flight.
template <int N> RL_DEV void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Two f32 values packed as one register of two 16-bit floats (low = a), round to nearest even.
RL_DEV u32 pack2_bf16(float a, float b) {
  return (u32)f32_to_bf16(a, false) | ((u32)f32_to_bf16(b, false) << 16);
}
RL_DEV u32 pack2_f16(float a, float b) {
  return (u32)f32_to_f16(a, false) | ((u32)f32_to_f16(b, false) << 16);
}
template <typename T> RL_DEV u32 pack2(float a, float b);
template <> RL_DEV u32 pack2<BF16>(float a, float b) { return pack2_bf16(a, b); }
template <> RL_DEV u32 pack2<F16>(float a, float b) { return pack2_f16(a, b); }

#endif
