// Every numeric tolerance used by the tests, per precision, in one place. Changing one needs a
// written reason next to it.
#ifndef HB_TOLERANCES_H
#define HB_TOLERANCES_H

// CPU fp32 op vs a double-precision reference on the same inputs (relative L2 error).
#define TOL_F32_OP 1e-5
// Whole-model fp32 output vs an oracle (torchaudio) computing in fp32: errors accumulate over
// 12-24 layers of sums of ~1e3 terms with different summation orders (BLAS blocking).
#define TOL_F32_MODEL 1e-4
// Finite-difference gradient checks in double precision (central differences, h = 1e-6).
#define TOL_GRAD_F64 1e-6
// Finite-difference gradient checks in float (h ~ 1e-3): truncation and rounding both ~1e-3.
#define TOL_GRAD_F32 2e-2
// CUDA fp32 vs CPU, and bf16 vs CPU.
#define TOL_CUDA_F32 1e-5
#define TOL_CUDA_BF16 1e-2

#endif
