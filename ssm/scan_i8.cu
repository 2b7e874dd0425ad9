/* The int8 pass's scans (ssm/scan.cuh): int8 inputs times their scales, the simulation's arithmetic. */
#include "ssm/scan.cuh"

void k_scan_m1(const k_scan_m1_args<k_in_i8, half> &a, cudaStream_t st) { scan_m1(a, st); }
void k_scan_m2(const k_scan_m2_args<k_in_i8, float> &a, cudaStream_t st) { scan_m2(a, st); }
