#include "worker/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

constexpr char kDenseMagic[8] = {'A', 'P', 'S', 'D', 'N', 'S', '0', '1'};

Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Status::IoError("open " + path + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::IoError("fsync " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

void AppendU64(uint64_t v, std::string* out) { out->append(reinterpret_cast<char*>(&v), 8); }

bool TakeU64(const std::string& in, size_t* at, uint64_t* v) {
  if (*at + 8 > in.size()) return false;
  std::memcpy(v, in.data() + *at, 8);
  *at += 8;
  return true;
}

}  // namespace

std::string StepDirName(int64_t step) { return "step-" + std::to_string(step); }

uint32_t Crc32(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const size_t kMax = 1u << 30;
  for (size_t at = 0; at < bytes.size(); at += kMax) {
    const size_t n = std::min(kMax, bytes.size() - at);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(crc);
}

Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::IoError("cannot write " + tmp);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return Status::IoError("writing " + tmp + " failed (disk full?)");
  }
  ATTNPS_RETURN_IF_ERROR(SyncPath(tmp, O_RDONLY));
  std::error_code error;
  fs::rename(tmp, path, error);
  if (error) return Status::IoError("rename " + tmp + " -> " + path + ": " + error.message());
  const std::string parent = fs::path(path).parent_path().string();
  return SyncPath(parent.empty() ? "." : parent, O_RDONLY | O_DIRECTORY);
}

Status ReadFile(const std::string& path, std::string* bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  *bytes = s.str();
  return Status::Ok();
}

Status WriteDense(const std::string& path, const std::vector<DenseBlock>& blocks,
                  int64_t optimizer_steps) {
  std::string out(kDenseMagic, 8);
  AppendU64(static_cast<uint64_t>(optimizer_steps), &out);
  AppendU64(blocks.size(), &out);
  for (const DenseBlock& b : blocks) {
    AppendU64(b.name.size(), &out);
    out += b.name;
    AppendU64(static_cast<uint64_t>(b.tensor.numel()), &out);
    out.append(reinterpret_cast<const char*>(b.tensor.data()), sizeof(float) * b.tensor.numel());
  }
  AppendU64(Crc32(out), &out);
  return WriteFileAtomically(path, out);
}

Status ReadDense(const std::string& path, const std::vector<DenseBlock>& blocks,
                 int64_t* optimizer_steps) {
  std::string in;
  ATTNPS_RETURN_IF_ERROR(ReadFile(path, &in));
  auto corrupt = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (in.size() < 32 || std::memcmp(in.data(), kDenseMagic, 8) != 0) {
    return corrupt("not a dense checkpoint (bad magic or truncated)");
  }
  uint64_t crc = 0;
  std::memcpy(&crc, in.data() + in.size() - 8, 8);
  const std::string body = in.substr(0, in.size() - 8);
  if (Crc32(body) != crc) return corrupt("checksum mismatch (corrupted or truncated)");
  size_t at = 8;
  uint64_t steps = 0, count = 0;
  TakeU64(body, &at, &steps);
  TakeU64(body, &at, &count);
  if (count != blocks.size()) {
    return corrupt("holds " + std::to_string(count) + " blocks, the model has " +
                   std::to_string(blocks.size()));
  }
  for (const DenseBlock& b : blocks) {
    uint64_t len = 0, n = 0;
    if (!TakeU64(body, &at, &len) || at + len > body.size()) return corrupt("truncated");
    const std::string name = body.substr(at, len);
    at += len;
    if (!TakeU64(body, &at, &n) || at + n * sizeof(float) > body.size())
      return corrupt("truncated");
    if (name != b.name || n != static_cast<uint64_t>(b.tensor.numel())) {
      return corrupt("block " + name + " of " + std::to_string(n) + " floats, the model expects " +
                     b.name + " of " + std::to_string(b.tensor.numel()) +
                     " (a different model or config?)");
    }
    std::memcpy(b.tensor.data(), body.data() + at, n * sizeof(float));
    at += n * sizeof(float);
  }
  *optimizer_steps = static_cast<int64_t>(steps);
  return Status::Ok();
}

Status WritePosition(const std::string& path, const StreamPosition& p) {
  std::ostringstream s;
  s << p.epoch << ' ' << p.block_offset << ' ' << p.block_line << ' ' << p.taken << '\n';
  return WriteFileAtomically(path, s.str());
}

Status ReadPosition(const std::string& path, StreamPosition* p) {
  std::string text;
  ATTNPS_RETURN_IF_ERROR(ReadFile(path, &text));
  std::istringstream s(text);
  if (!(s >> p->epoch >> p->block_offset >> p->block_line >> p->taken)) {
    return Status::Corruption(path + ": not a reader position");
  }
  return Status::Ok();
}

Status WriteManifest(const std::string& step_dir, const std::vector<std::string>& files,
                     config::CheckpointManifest manifest) {
  for (const std::string& f : files) {
    std::string bytes;
    ATTNPS_RETURN_IF_ERROR(ReadFile(step_dir + "/" + f, &bytes));
    auto* entry = manifest.add_files();
    entry->set_path(f);
    entry->set_size(bytes.size());
    entry->set_crc32(Crc32(bytes));
  }
  return WriteFileAtomically(step_dir + "/MANIFEST", manifest.SerializeAsString());
}

Status ReadManifest(const std::string& step_dir, config::CheckpointManifest* manifest) {
  std::string bytes;
  const std::string path = step_dir + "/MANIFEST";
  if (!ReadFile(path, &bytes).ok()) {
    return Status::NotFound(path + " is missing: the checkpoint is incomplete");
  }
  if (!manifest->ParseFromString(bytes)) return Status::Corruption(path + " does not parse");
  for (const auto& f : manifest->files()) {
    std::string content;
    const std::string file = step_dir + "/" + f.path();
    ATTNPS_RETURN_IF_ERROR(ReadFile(file, &content));
    if (content.size() != f.size() || Crc32(content) != f.crc32()) {
      return Status::Corruption(file + ": size or checksum differs from the manifest");
    }
  }
  return Status::Ok();
}

Status PublishLatest(const std::string& dir, const std::string& step_dir_name) {
  return WriteFileAtomically(dir + "/LATEST", step_dir_name + "\n");
}

Status ReadLatest(const std::string& dir, std::string* step_dir) {
  std::string text;
  if (!ReadFile(dir + "/LATEST", &text).ok()) {
    return Status::NotFound("no checkpoint to resume in " + dir + " (no LATEST file)");
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.rfind("step-", 0) != 0) return Status::Corruption(dir + "/LATEST: \"" + text + "\"");
  *step_dir = dir + "/" + text;
  return Status::Ok();
}

Status PruneCheckpoints(const std::string& dir, int keep_last) {
  if (keep_last <= 0) return Status::Ok();
  std::string latest;
  ATTNPS_RETURN_IF_ERROR(ReadLatest(dir, &latest));
  std::vector<std::pair<int64_t, fs::path>> steps;
  std::error_code error;
  for (const auto& e : fs::directory_iterator(dir, error)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0 || !e.is_directory()) continue;
    steps.emplace_back(std::atoll(name.c_str() + 5), e.path());
  }
  std::sort(steps.rbegin(), steps.rend());
  for (size_t i = keep_last; i < steps.size(); ++i) {
    if (fs::path(latest) == steps[i].second) continue;
    fs::remove_all(steps[i].second, error);
  }
  return Status::Ok();
}

}  // namespace attnps::worker
