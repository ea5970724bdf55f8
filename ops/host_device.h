// ATTNPS_HD marks a function callable on the host and, compiled by nvcc, on the device: the
// kernel bodies and the few helpers they share with the CPU ops (random streams, gate mixes).
#ifndef ATTNPS_OPS_HOST_DEVICE_H_
#define ATTNPS_OPS_HOST_DEVICE_H_

#ifdef __CUDACC__
#define ATTNPS_HD __host__ __device__
#else
#define ATTNPS_HD
#endif

#endif  // ATTNPS_OPS_HOST_DEVICE_H_
