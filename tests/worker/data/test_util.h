// Helpers shared by the data tests: temp dirs and whole-file reads/writes.
#ifndef ATTNPS_TESTS_WORKER_DATA_TEST_UTIL_H_
#define ATTNPS_TESTS_WORKER_DATA_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace attnps::data::testing_util {

// A fresh empty directory under the test temp dir, unique per test.
inline std::string FreshDir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = ::testing::TempDir() + "/attnps_data_" + info->test_suite_name() + "_" +
                    info->name() + "_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace attnps::data::testing_util

#endif  // ATTNPS_TESTS_WORKER_DATA_TEST_UTIL_H_
