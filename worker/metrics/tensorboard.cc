#include "worker/metrics/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "proto/tensorboard_event.pb.h"

namespace attnps::metrics {
namespace {

std::array<uint32_t, 256> Crc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "host";
  return name;
}

}  // namespace

uint32_t Crc32c(const char* data, size_t n) {
  static const std::array<uint32_t, 256> table = Crc32cTable();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ static_cast<uint8_t>(data[i])) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(const char* data, size_t n) {
  const uint32_t c = Crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

Status TensorBoardWriter::Open(const std::string& dir, std::unique_ptr<TensorBoardWriter>* writer) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return Status::IoError("tensorboard_dir " + dir + ": " + error.message());
  const std::string path = dir + "/events.out.tfevents." + std::to_string(std::time(nullptr)) +
                           "." + HostName() + "." + std::to_string(getpid()) + ".attnps";
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return Status::IoError("TensorBoard event file " + path +
                           ": cannot create: " + std::strerror(errno));
  }
  writer->reset(new TensorBoardWriter(path, file));
  tensorboard::Event first;
  first.set_wall_time(static_cast<double>(std::time(nullptr)));
  first.set_file_version("brain.Event:2");
  return (*writer)->WriteRecord(first.SerializeAsString());
}

TensorBoardWriter::~TensorBoardWriter() { std::fclose(file_); }

Status TensorBoardWriter::Add(int64_t step, double wall_time,
                              const std::vector<std::pair<std::string, double>>& scalars) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tensorboard::Summary* summary = event.mutable_summary();
  for (const auto& [tag, value] : scalars) {
    if (!std::isfinite(value)) continue;
    tensorboard::SummaryValue* v = summary->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  return WriteRecord(event.SerializeAsString());
}

// TFRecord: uint64 length, masked CRC of the length's 8 bytes, data, masked CRC of the data
// (little-endian).
Status TensorBoardWriter::WriteRecord(const std::string& data) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "TFRecord fields are little-endian");
  const uint64_t length = data.size();
  char head[12];
  std::memcpy(head, &length, 8);
  const uint32_t length_crc = MaskedCrc32c(head, 8);
  std::memcpy(head + 8, &length_crc, 4);
  const uint32_t data_crc = MaskedCrc32c(data.data(), data.size());
  const bool ok = std::fwrite(head, 1, 12, file_) == 12 &&
                  std::fwrite(data.data(), 1, data.size(), file_) == data.size() &&
                  std::fwrite(&data_crc, 1, 4, file_) == 4 && std::fflush(file_) == 0;
  if (!ok) {
    return Status::IoError("TensorBoard event file " + path_ +
                           ": write failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace attnps::metrics
