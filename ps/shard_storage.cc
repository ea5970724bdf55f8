#include "ps/shard_storage.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

namespace attnps::ps {
namespace {

constexpr char kMetaTag = 'm';
constexpr char kRowTag = 'r';

struct TableSummary {
  uint32_t dim = 0, state_width = 0, optimizer = 0;
  uint64_t rows = 0, crc_sum = 0;
  std::string name;
};

void PutBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetBigEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

template <typename T>
void PutRaw(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
T GetRaw(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

uint32_t Crc(const std::string& a, const char* b, size_t b_len) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(a.data()), static_cast<uInt>(a.size()));
  crc = crc32(crc, reinterpret_cast<const Bytef*>(b), static_cast<uInt>(b_len));
  return static_cast<uint32_t>(crc);
}

std::string TableKey(char tag, uint32_t table_id) {
  std::string key(1, tag);
  PutBigEndian(&key, table_id, 4);
  return key;
}

std::string RowKey(uint32_t table_id, uint64_t key) {
  std::string k = TableKey(kRowTag, table_id);
  PutBigEndian(&k, key, 8);
  return k;
}

// value = version | last_update | floats | crc(key + preceding value bytes)
std::string EncodeRow(const std::string& key, const float* value, int width, uint64_t last_update,
                      uint32_t* crc_out) {
  std::string v;
  v.reserve(1 + 8 + 4 * width + 4);
  v.push_back(static_cast<char>(kShardFormatVersion));
  PutRaw(&v, last_update);
  v.append(reinterpret_cast<const char*>(value), sizeof(float) * width);
  const uint32_t crc = Crc(key, v.data(), v.size());
  PutRaw(&v, crc);
  *crc_out = crc;
  return v;
}

std::string EncodeMeta(const std::string& key, const TableSummary& s) {
  std::string v;
  v.push_back(static_cast<char>(kShardFormatVersion));
  PutRaw(&v, s.dim);
  PutRaw(&v, s.state_width);
  PutRaw(&v, s.optimizer);
  PutRaw(&v, s.rows);
  PutRaw(&v, s.crc_sum);
  v.append(s.name);
  PutRaw(&v, Crc(key, v.data(), v.size()));
  return v;
}

Status DecodeMeta(const std::string& where, const std::string& key, const std::string& v,
                  TableSummary* s) {
  constexpr size_t kFixed = 1 + 4 * 3 + 8 * 2;
  if (v.size() < kFixed + 4) return Status::Corruption(where + ": table record too short");
  if (GetRaw<uint32_t>(v.data() + v.size() - 4) != Crc(key, v.data(), v.size() - 4)) {
    return Status::Corruption(where + ": table record checksum mismatch");
  }
  if (static_cast<uint8_t>(v[0]) != kShardFormatVersion) {
    return Status::Corruption(where + ": unknown format version " + std::to_string(v[0]));
  }
  const char* p = v.data() + 1;
  s->dim = GetRaw<uint32_t>(p);
  s->state_width = GetRaw<uint32_t>(p + 4);
  s->optimizer = GetRaw<uint32_t>(p + 8);
  s->rows = GetRaw<uint64_t>(p + 12);
  s->crc_sum = GetRaw<uint64_t>(p + 20);
  s->name.assign(v.data() + kFixed, v.size() - kFixed - 4);
  return Status::Ok();
}

Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(context + ": " + s.ToString());
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(context + ": " + s.ToString());
  return Status::IoError(context + ": " + s.ToString());
}

// Discards RocksDB's info log. The default one writes LOG (LOG.old on reopen) into the shard
// directory and, once a write to LOG has failed (a full disk), aborts on the next log line: an
// assertion in RocksDB's WritableFileWriter::Append, e.g. while ~DBImpl logs after a failed Open.
class NullLogger : public rocksdb::Logger {
 public:
  NullLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
  void Logv(const rocksdb::InfoLogLevel /*level*/, const char* /*format*/,
            va_list /*ap*/) override {}
};

rocksdb::Options QuietOptions() {
  rocksdb::Options options;
  options.paranoid_checks = true;
  options.info_log = std::make_shared<NullLogger>();
  options.info_log_level = rocksdb::InfoLogLevel::HEADER_LEVEL;
  options.max_bgerror_resume_count = 0;  // no retries in the background
  return options;
}

enum class Pass { kVerify, kInsert };

// Reads one database. kVerify checks everything and inserts nothing; kInsert (after a successful
// kVerify) inserts each row into the shard `route` picks.
// by_id: table id -> that table in every destination shard.
using TablesById = std::map<uint32_t, std::vector<EmbeddingShard*>>;

Status ReadDatabase(const std::string& dir, const std::function<int(uint64_t)>& route,
                    const TablesById& by_id, Pass pass) {
  if (!std::filesystem::is_directory(dir))
    return Status::NotFound(dir + ": no such shard directory");
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::DB* raw = nullptr;
  ATTNPS_RETURN_IF_ERROR(FromRocks(rocksdb::DB::OpenForReadOnly(QuietOptions(), dir, &raw), dir));
  db.reset(raw);
  if (pass == Pass::kVerify) ATTNPS_RETURN_IF_ERROR(FromRocks(db->VerifyChecksum(), dir));

  std::map<uint32_t, TableSummary> saved, seen;
  std::vector<float> row;  // the value bytes are not float-aligned: copied out first
  rocksdb::ReadOptions read;
  read.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    const std::string value = it->value().ToString();
    if (key.size() == 5 && key[0] == kMetaTag) {
      const uint32_t id = static_cast<uint32_t>(GetBigEndian(key.data() + 1, 4));
      ATTNPS_RETURN_IF_ERROR(
          DecodeMeta(dir + " table " + std::to_string(id), key, value, &saved[id]));
      continue;
    }
    if (key.size() != 13 || key[0] != kRowTag) return Status::Corruption(dir + ": unknown record");
    const uint32_t id = static_cast<uint32_t>(GetBigEndian(key.data() + 1, 4));
    const uint64_t k = GetBigEndian(key.data() + 5, 8);
    const std::string where = dir + " table " + std::to_string(id) + " key " + std::to_string(k);
    if (value.size() < 13 || GetRaw<uint32_t>(value.data() + value.size() - 4) !=
                                 Crc(key, value.data(), value.size() - 4)) {
      return Status::Corruption(where + ": row checksum mismatch");
    }
    const uint32_t crc = GetRaw<uint32_t>(value.data() + value.size() - 4);
    TableSummary& s = seen[id];
    s.rows += 1;
    s.crc_sum += crc;
    auto table = by_id.find(id);
    if (table == by_id.end()) continue;
    const EmbeddingShard& first = *table->second[0];
    const size_t width = (value.size() - 13) / sizeof(float);
    if (width != static_cast<size_t>(first.value_width())) {
      return Status::InvalidArgument(where + ": saved row has " + std::to_string(width) +
                                     " floats, configured table " + first.config().name + " (dim " +
                                     std::to_string(first.dim()) + ") has " +
                                     std::to_string(first.value_width()));
    }
    const int dest = route ? route(k) : 0;
    if (pass == Pass::kInsert && dest >= 0) {
      row.resize(width);
      std::memcpy(row.data(), value.data() + 9, width * sizeof(float));
      table->second.at(dest)->InsertRow(k, row.data(), GetRaw<uint64_t>(value.data() + 1));
    }
  }
  ATTNPS_RETURN_IF_ERROR(FromRocks(it->status(), dir));

  for (const auto& [id, s] : seen) {
    if (saved.count(id) == 0)
      return Status::Corruption(dir + ": rows of table " + std::to_string(id) +
                                " without a table record");
  }
  for (const auto& [id, s] : saved) {
    const TableSummary& got = seen[id];
    if (got.rows != s.rows || got.crc_sum != s.crc_sum) {
      return Status::Corruption(dir + " table " + s.name + ": " + std::to_string(got.rows) +
                                " rows readable of " + std::to_string(s.rows) +
                                " saved (rows lost or altered)");
    }
    auto table = by_id.find(id);
    if (table == by_id.end()) continue;
    const EmbeddingShard& t = *table->second[0];
    if (s.dim != static_cast<uint32_t>(t.dim()) ||
        s.optimizer != static_cast<uint32_t>(t.config().optimizer.kind) ||
        s.state_width != static_cast<uint32_t>(t.state_width())) {
      return Status::InvalidArgument(dir + " table " + s.name + ": saved with dim " +
                                     std::to_string(s.dim) + " and optimizer " +
                                     std::to_string(s.optimizer) + ", configured dim " +
                                     std::to_string(t.dim()) + " and optimizer " +
                                     std::to_string(static_cast<int>(t.config().optimizer.kind)));
    }
  }
  return Status::Ok();
}

// Writes one table's rows and its table record.
Status WriteTable(rocksdb::DB* db, const std::string& dir, const EmbeddingShard& table) {
  rocksdb::WriteOptions write;
  write.disableWAL = true;  // the memtable is flushed to SST files before Close
  TableSummary summary{static_cast<uint32_t>(table.dim()),
                       static_cast<uint32_t>(table.state_width()),
                       static_cast<uint32_t>(table.config().optimizer.kind),
                       0,
                       0,
                       table.config().name};
  const uint32_t id = table.config().id;
  rocksdb::WriteBatch batch;
  Status status;
  table.ForEachRow([&](uint64_t key, const float* value, uint64_t last_update) {
    if (!status.ok()) return;
    const std::string k = RowKey(id, key);
    uint32_t crc = 0;
    batch.Put(k, EncodeRow(k, value, table.value_width(), last_update, &crc));
    summary.rows += 1;
    summary.crc_sum += crc;
    if (batch.GetDataSize() > (8 << 20)) {
      status = FromRocks(db->Write(write, &batch), dir);
      batch.Clear();
    }
  });
  ATTNPS_RETURN_IF_ERROR(status);
  const std::string meta_key = TableKey(kMetaTag, id);
  batch.Put(meta_key, EncodeMeta(meta_key, summary));
  return FromRocks(db->Write(write, &batch), dir);
}

// Creates the database, writes, flushes and closes it. On an error the DB is still deleted (which
// closes it and joins its background work) before returning.
Status WriteDatabase(const std::string& dir, const std::vector<const EmbeddingShard*>& tables) {
  rocksdb::Options options = QuietOptions();
  options.create_if_missing = true;
  options.error_if_exists = true;
  rocksdb::DB* raw = nullptr;
  ATTNPS_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, dir, &raw), dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  for (const EmbeddingShard* table : tables) {
    ATTNPS_RETURN_IF_ERROR(WriteTable(db.get(), dir, *table));
  }
  ATTNPS_RETURN_IF_ERROR(FromRocks(db->Flush(rocksdb::FlushOptions()), dir));
  return FromRocks(db->Close(), dir);
}

// True for what a closed database no longer needs: the LOCK file and empty WAL files (the WAL is
// off and the memtable flushed).
bool IsLockOrEmptyWal(const std::filesystem::directory_entry& entry) {
  std::error_code error;
  if (entry.path().filename() == "LOCK") return true;
  return entry.path().extension() == ".log" && entry.file_size(error) == 0 && !error;
}

Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string cause = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return Status::IoError(dir + ": cannot sync the directory: " + cause);
  }
  ::close(fd);
  return Status::Ok();
}

// Removes the LOCK file and empty WAL files, then syncs the directory so that they stay removed.
Status RemoveLockAndEmptyWal(const std::string& dir) {
  std::error_code error;
  std::vector<std::filesystem::path> remove;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (IsLockOrEmptyWal(entry)) remove.push_back(entry.path());
  }
  if (error) return Status::IoError(dir + ": cannot list: " + error.message());
  for (const auto& path : remove) {
    std::filesystem::remove(path, error);
    if (error) return Status::IoError(path.string() + ": cannot remove: " + error.message());
  }
  return SyncDirectory(dir);
}

}  // namespace

Status SaveShard(const std::string& dir, const std::vector<const EmbeddingShard*>& tables) {
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), error);
  if (error) return Status::IoError(dir + ": cannot create parent directory: " + error.message());
  // Created here, atomically, so that a failed save removes only its own directory.
  if (!std::filesystem::create_directory(dir, error)) {
    if (error) return Status::IoError(dir + ": cannot create: " + error.message());
    return Status::InvalidArgument(dir + ": already exists");
  }
  Status status = WriteDatabase(dir, tables);
  if (status.ok()) status = RemoveLockAndEmptyWal(dir);
  if (!status.ok()) std::filesystem::remove_all(dir, error);  // best effort: frees the space
  return status;
}

Status LoadShards(const std::vector<std::string>& dirs, const std::function<int(uint64_t)>& route,
                  const std::vector<std::vector<EmbeddingShard*>>& shards) {
  TablesById by_id;
  for (const auto& tables : shards) {
    for (EmbeddingShard* t : tables) by_id[t->config().id].push_back(t);
  }
  for (const auto& [id, list] : by_id) {
    CHECK_EQ(list.size(), shards.size()) << "LoadShards: table " << id << " missing in a shard";
  }
  for (const std::string& dir : dirs) {
    ATTNPS_RETURN_IF_ERROR(
        ReadDatabase(dir, route, by_id, Pass::kVerify).WithContext("loading shard"));
  }
  for (const std::string& dir : dirs) {
    ATTNPS_RETURN_IF_ERROR(
        ReadDatabase(dir, route, by_id, Pass::kInsert).WithContext("loading shard"));
  }
  return Status::Ok();
}

}  // namespace attnps::ps
