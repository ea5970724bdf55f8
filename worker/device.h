// The device seam: where a worker runs its dense model (train.device). Every decision that
// depends on it (where pulled rows cross to the device, where the dense optimizer runs, which
// allreduce is used) is to be taken here, in one place.
//
// Today only CPU workers exist: CheckDevice refuses CUDA at start, saying why (a build without
// CUDA, no GPU visible, or GPU workers not implemented yet).
// Thread-safety: pure functions.
#ifndef ATTNPS_WORKER_DEVICE_H_
#define ATTNPS_WORKER_DEVICE_H_

#include "ops/status.h"
#include "proto/job_config.pb.h"

namespace attnps::worker {

// OK when this process can run workers on `device`; otherwise InvalidArgument, one line naming
// train.device and the reason.
Status CheckDevice(config::TrainConfig::Device device);

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_DEVICE_H_
