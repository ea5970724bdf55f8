#include "worker/checkpoint.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <sys/file.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

constexpr char kDenseMagic[8] = {'A', 'P', 'S', 'D', 'N', 'S', '0', '1'};
constexpr char kManifestMagic[8] = {'A', 'P', 'S', 'M', 'N', 'F', '0', '2'};
constexpr char kManifestName[] = "MANIFEST";
constexpr size_t kManifestFraming = 8 + 8 + 4;  // magic, payload length, CRC32

std::string Errno() { return std::strerror(errno); }

Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Status::IoError("open " + path + ": " + Errno());
  const int rc = ::fsync(fd);
  const std::string cause = rc != 0 ? Errno() : "";
  ::close(fd);
  if (rc != 0) return Status::IoError("fsync " + path + ": " + cause);
  return Status::Ok();
}

Status WriteAll(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("cannot write " + path + ": " + Errno());
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string cause = n < 0 ? Errno() : "short write";
      ::close(fd);
      return Status::IoError("writing " + path + " failed: " + cause);
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const std::string cause = synced ? "" : Errno();
  if (::close(fd) != 0 && synced) return Status::IoError("closing " + path + ": " + Errno());
  if (!synced) return Status::IoError("fsync " + path + ": " + cause);
  return Status::Ok();
}

void AppendU64(uint64_t v, std::string* out) { out->append(reinterpret_cast<char*>(&v), 8); }

bool TakeU64(const std::string& in, size_t* at, uint64_t* v) {
  if (*at + 8 > in.size()) return false;
  std::memcpy(v, in.data() + *at, 8);
  *at += 8;
  return true;
}

// Reads the file in chunks into `sink`; IoError naming the path and the cause.
Status ReadChunks(const std::string& path, const std::function<void(const char*, size_t)>& sink) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot read " + path + ": " + Errno());
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string cause = Errno();
      ::close(fd);
      return Status::IoError("reading " + path + ": " + cause);
    }
    if (n == 0) break;
    sink(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return Status::Ok();
}

// Streams the file: its size and XXH64, without holding it in memory.
Status FileHash(const std::string& path, uint64_t* size, uint64_t* hash) {
  std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> state(XXH64_createState(),
                                                                   &XXH64_freeState);
  XXH64_reset(state.get(), 0);
  uint64_t total = 0;
  ATTNPS_RETURN_IF_ERROR(ReadChunks(path, [&](const char* data, size_t n) {
    XXH64_update(state.get(), data, n);
    total += n;
  }));
  *size = total;
  *hash = XXH64_digest(state.get());
  return Status::Ok();
}

// Files (relative paths, sorted) and directories under root, MANIFEST and its .tmp excepted.
Status ListTree(const std::string& root, std::vector<std::string>* files,
                std::set<std::string>* dirs) {
  std::error_code error;
  fs::recursive_directory_iterator it(root, error), end;
  for (; !error && it != end; it.increment(error)) {
    const std::string rel = it->path().lexically_relative(root).generic_string();
    if (it->is_directory(error)) {
      if (dirs != nullptr) dirs->insert(rel);
    } else if (rel != kManifestName && rel != std::string(kManifestName) + ".tmp") {
      files->push_back(rel);
    }
  }
  if (error) return Status::IoError("listing " + root + ": " + error.message());
  std::sort(files->begin(), files->end());
  return Status::Ok();
}

int64_t StepOfDirName(const std::string& name) {  // -1 unless "step-<digits>"
  if (name.rfind("step-", 0) != 0 || name.size() == 5 || name.size() > 5 + 18) return -1;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
  }
  return std::atoll(name.c_str() + 5);
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
  std::error_code error;
  if (Status st = WriteAll(tmp, bytes); !st.ok()) {
    fs::remove(tmp, error);
    return st;
  }
  fs::rename(tmp, path, error);
  if (error) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return Status::IoError("rename " + tmp + " -> " + path + ": " + error.message());
  }
  const std::string parent = fs::path(path).parent_path().string();
  return SyncPath(parent.empty() ? "." : parent, O_RDONLY | O_DIRECTORY);
}

Status ReadFile(const std::string& path, std::string* bytes) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (error && error != std::errc::no_such_file_or_directory) {
    return Status::IoError("cannot read " + path + ": " + error.message());
  }
  if (!fs::exists(status)) return Status::NotFound(path + ": no such file");
  if (!fs::is_regular_file(status)) {
    return Status::InvalidArgument(path + ": " +
                                   (fs::is_directory(status) ? "is a directory" : "not a file"));
  }
  bytes->clear();
  return ReadChunks(path, [bytes](const char* data, size_t n) { bytes->append(data, n); });
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
    if (b.tensor.numel() > 0) {  // an empty tensor may have no storage at all
      out.append(reinterpret_cast<const char*>(b.tensor.data()), sizeof(float) * b.tensor.numel());
    }
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
    if (n > 0) std::memcpy(b.tensor.data(), body.data() + at, n * sizeof(float));
    at += n * sizeof(float);
  }
  *optimizer_steps = static_cast<int64_t>(steps);
  return Status::Ok();
}

// "epoch offset line taken", then for a remapped epoch "remap old new index current counter n"
// and n lines "offset line taken" (the old streams still to read).
Status WritePosition(const std::string& path, const StreamPosition& p) {
  std::ostringstream s;
  s << p.epoch << ' ' << p.block_offset << ' ' << p.block_line << ' ' << p.taken << '\n';
  if (p.remapped) {
    const StreamRemap& r = p.remap;
    s << "remap " << r.old_workers << ' ' << r.new_workers << ' ' << r.index << ' ' << r.current
      << ' ' << r.counter << ' ' << r.rest.size() << '\n';
    for (const BlockPosition& b : r.rest) {
      s << b.block_offset << ' ' << b.block_line << ' ' << b.taken << '\n';
    }
  }
  return WriteFileAtomically(path, s.str());
}

Status ReadPosition(const std::string& path, StreamPosition* p) {
  std::string text;
  ATTNPS_RETURN_IF_ERROR(ReadFile(path, &text));
  std::istringstream s(text);
  *p = StreamPosition();
  if (!(s >> p->epoch >> p->block_offset >> p->block_line >> p->taken)) {
    return Status::Corruption(path + ": not a reader position");
  }
  std::string word;
  if (!(s >> word)) return Status::Ok();
  StreamRemap& r = p->remap;
  size_t n = 0;
  if (word != "remap" ||
      !(s >> r.old_workers >> r.new_workers >> r.index >> r.current >> r.counter >> n) ||
      r.new_workers < 1 || r.index < 0 || r.index >= r.new_workers || r.old_workers < 1 ||
      r.current < 0 || static_cast<size_t>(r.current) + n > static_cast<size_t>(r.old_workers)) {
    return Status::Corruption(path + ": not a reader position (bad remap)");
  }
  r.rest.resize(n);
  for (BlockPosition& b : r.rest) {
    if (!(s >> b.block_offset >> b.block_line >> b.taken)) {
      return Status::Corruption(path + ": not a reader position (truncated remap)");
    }
  }
  p->remapped = true;
  return Status::Ok();
}

Status WriteManifest(const std::string& step_dir, config::CheckpointManifest manifest) {
  std::vector<std::string> files;
  std::set<std::string> dirs;
  ATTNPS_RETURN_IF_ERROR(ListTree(step_dir, &files, &dirs));
  manifest.clear_files();
  manifest.clear_directories();
  for (const std::string& d : dirs) manifest.add_directories(d);
  manifest.set_format_version(2);
  for (const std::string& f : files) {
    uint64_t size = 0, hash = 0;
    ATTNPS_RETURN_IF_ERROR(FileHash(step_dir + "/" + f, &size, &hash));
    auto* entry = manifest.add_files();
    entry->set_path(f);
    entry->set_size(size);
    entry->set_xxh64(hash);
  }
  const std::string payload = manifest.SerializeAsString();
  std::string out(kManifestMagic, 8);
  AppendU64(payload.size(), &out);
  out += payload;
  const uint32_t crc = Crc32(out);
  out.append(reinterpret_cast<const char*>(&crc), 4);
  return WriteFileAtomically(step_dir + "/" + kManifestName, out);
}

Status ReadManifest(const std::string& step_dir, config::CheckpointManifest* manifest) {
  const std::string path = step_dir + "/" + kManifestName;
  std::string bytes;
  const Status read = ReadFile(path, &bytes);
  if (read.code() == Status::Code::kNotFound) {
    return Status::NotFound(path + " is missing: the checkpoint is incomplete (or " + step_dir +
                            " is not a checkpoint step directory)");
  }
  ATTNPS_RETURN_IF_ERROR(read);
  auto corrupt = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (bytes.size() < kManifestFraming || std::memcmp(bytes.data(), kManifestMagic, 8) != 0) {
    return corrupt("not an attnps manifest (" + std::to_string(bytes.size()) +
                   " bytes, bad magic or truncated)");
  }
  uint64_t length = 0;
  std::memcpy(&length, bytes.data() + 8, 8);
  if (length != bytes.size() - kManifestFraming) {
    return corrupt("truncated or extended: " + std::to_string(bytes.size()) +
                   " bytes, the header says " + std::to_string(length + kManifestFraming));
  }
  uint32_t crc = 0;
  std::memcpy(&crc, bytes.data() + bytes.size() - 4, 4);
  if (Crc32(bytes.substr(0, bytes.size() - 4)) != crc) return corrupt("checksum mismatch");
  if (!manifest->ParseFromArray(bytes.data() + 16, static_cast<int>(length))) {
    return corrupt("does not parse");
  }
  if (manifest->format_version() != 2 || !manifest->has_step() || manifest->files_size() == 0) {
    return corrupt("unsupported format version or missing fields");
  }
  const std::string name = fs::path(step_dir).filename().string();
  if (StepOfDirName(name) != manifest->step()) {
    return corrupt("written for step " + std::to_string(manifest->step()) + ", but it is in " +
                   name + " (copied from another step?)");
  }
  return Status::Ok();
}

Status VerifyStepFiles(const std::string& step_dir, const config::CheckpointManifest& manifest) {
  std::vector<std::string> files;
  std::set<std::string> dirs;
  ATTNPS_RETURN_IF_ERROR(ListTree(step_dir, &files, &dirs));
  std::map<std::string, const config::CheckpointManifest::FileChecksum*> listed;
  std::set<std::string> listed_dirs(manifest.directories().begin(), manifest.directories().end());
  for (const auto& f : manifest.files()) {
    listed[f.path()] = &f;
    for (fs::path p = fs::path(f.path()).parent_path(); !p.empty(); p = p.parent_path()) {
      listed_dirs.insert(p.generic_string());
    }
  }
  for (const std::string& f : files) {
    if (listed.count(f) == 0) {
      return Status::Corruption(step_dir + "/" + f +
                                ": extra file, not in the manifest (copied in from elsewhere?)");
    }
  }
  for (const std::string& d : dirs) {
    if (listed_dirs.count(d) == 0) {
      return Status::Corruption(step_dir + "/" + d + ": extra directory, not in the manifest");
    }
  }
  for (const auto& [rel, entry] : listed) {
    const std::string file = step_dir + "/" + rel;
    if (!std::binary_search(files.begin(), files.end(), rel)) {
      return Status::Corruption(file + ": missing (the manifest lists it)");
    }
    uint64_t size = 0, hash = 0;
    ATTNPS_RETURN_IF_ERROR(FileHash(file, &size, &hash));
    if (size != entry->size()) {
      return Status::Corruption(file + ": " + std::to_string(size) + " bytes, the manifest says " +
                                std::to_string(entry->size()) + " (truncated or replaced)");
    }
    if (hash != entry->xxh64()) {
      return Status::Corruption(file +
                                ": checksum differs from the manifest (corrupted, or copied from "
                                "another checkpoint)");
    }
  }
  return Status::Ok();
}

Status VerifyCheckpoint(const std::string& step_dir, config::CheckpointManifest* manifest) {
  ATTNPS_RETURN_IF_ERROR(ReadManifest(step_dir, manifest));
  return VerifyStepFiles(step_dir, *manifest);
}

Status PublishLatest(const std::string& dir, const std::string& step_dir_name) {
  return WriteFileAtomically(dir + "/LATEST", step_dir_name + "\n");
}

Status ReadLatest(const std::string& dir, std::string* step_dir) {
  const std::string path = dir + "/LATEST";
  std::string text;
  const Status read = ReadFile(path, &text);
  if (read.code() == Status::Code::kNotFound) {
    return Status::NotFound("no checkpoint in " + dir + " (no LATEST file)");
  }
  ATTNPS_RETURN_IF_ERROR(read);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  if (StepOfDirName(text) < 0) {
    return Status::Corruption(path + ": must hold step-<N>, holds \"" + text.substr(0, 80) + "\"");
  }
  *step_dir = dir + "/" + text;
  return Status::Ok();
}

// The step directories of dir, newest first.
std::vector<std::pair<int64_t, fs::path>> StepDirs(const std::string& dir, std::error_code* error) {
  std::vector<std::pair<int64_t, fs::path>> steps;
  fs::directory_iterator it(dir, *error), end;
  for (; !*error && it != end; it.increment(*error)) {
    const int64_t step = StepOfDirName(it->path().filename().string());
    std::error_code ignored;
    if (step >= 0 && it->is_directory(ignored)) steps.emplace_back(step, it->path());
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

Status PruneCheckpoints(const std::string& dir, int keep_last) {
  if (keep_last <= 0) return Status::Ok();
  std::string latest;
  ATTNPS_RETURN_IF_ERROR(ReadLatest(dir, &latest));
  const int64_t latest_step = StepOfDirName(fs::path(latest).filename().string());
  std::error_code error;
  int kept = 0;
  for (const auto& [step, path] : StepDirs(dir, &error)) {
    // Steps newer than LATEST belong to a timeline a resume from an older step abandoned: they
    // are replaced as training reaches them, never pruned.
    if (step > latest_step || kept++ < keep_last) continue;
    std::error_code removed;
    fs::remove_all(path, removed);
    LOG_IF(WARNING, removed) << "cannot prune " << path << ": " << removed.message();
  }
  if (error) LOG(WARNING) << "listing " << dir << " to prune it: " << error.message();
  return Status::Ok();
}

bool HoldsCheckpoints(const std::string& dir, std::string* what) {
  std::error_code error;
  if (fs::exists(dir + "/LATEST", error)) {
    std::string latest;
    *what = ReadLatest(dir, &latest).ok() ? "LATEST -> " + fs::path(latest).filename().string()
                                          : "a LATEST file";
    return true;
  }
  for (const auto& [step, path] : StepDirs(dir, &error)) {
    if (fs::exists(path / kManifestName, error)) {
      *what = path.filename().string();
      return true;
    }
  }
  return false;
}

Status RemoveCheckpoints(const std::string& dir) {
  std::error_code error;
  fs::remove(dir + "/LATEST", error);
  if (error) return Status::IoError("removing " + dir + "/LATEST: " + error.message());
  for (const auto& [step, path] : StepDirs(dir, &error)) {
    std::error_code removed;
    fs::remove_all(path, removed);
    if (removed) return Status::IoError("removing " + path.string() + ": " + removed.message());
  }
  if (error) return Status::IoError("listing " + dir + ": " + error.message());
  return Status::Ok();
}

Status DirectoryLock::Acquire(const std::string& dir, std::unique_ptr<DirectoryLock>* out) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error)
    return Status::IoError("cannot create checkpoint directory " + dir + ": " + error.message());
  const std::string path = dir + "/LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status::IoError("cannot write in checkpoint directory " + dir + ": " + Errno());
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[256] = {0};
    const ssize_t n = ::pread(fd, holder, sizeof(holder) - 1, 0);
    ::close(fd);
    std::string who = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "unknown";
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    if (err != EWOULDBLOCK)
      return Status::IoError("cannot lock " + path + ": " + std::strerror(err));
    return Status::InvalidArgument("checkpoint directory " + dir +
                                   " is in use by another training job (" + who +
                                   "); wait for it to end or use another checkpoint.dir");
  }
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const std::string me = "pid " + std::to_string(::getpid()) + " host " + host + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    const std::string cause = Errno();
    ::close(fd);
    return Status::IoError("cannot write " + path + ": " + cause);
  }
  out->reset(new DirectoryLock(fd));
  return Status::Ok();
}

DirectoryLock::~DirectoryLock() { ::close(fd_); }

}  // namespace attnps::worker
