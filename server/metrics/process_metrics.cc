#include "server/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace selene::metrics {
namespace {

std::vector<Sample> One(double value) {
  Sample sample;
  sample.value = value;
  return {sample};
}

// Fields of /proc/self/stat after the command name (which may hold spaces), from field 3 on:
// fields[0] is field 3 (state).
std::vector<std::string> StatFields() {
  std::ifstream file("/proc/self/stat");
  std::string line;
  std::getline(file, line);
  const size_t name_end = line.rfind(')');
  std::vector<std::string> fields;
  if (name_end == std::string::npos) return fields;
  std::istringstream rest(line.substr(name_end + 1));
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

double StatField(int number) {  // `number` as proc(5) counts them, from 1
  const std::vector<std::string> fields = StatFields();
  const size_t index = static_cast<size_t>(number - 3);
  return index < fields.size() ? std::stod(fields[index]) : 0.0;
}

// Resident and virtual size in bytes from /proc/self/statm (in pages).
std::pair<double, double> MemoryBytes() {
  std::ifstream file("/proc/self/statm");
  double virtual_pages = 0;
  double resident_pages = 0;
  file >> virtual_pages >> resident_pages;
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  return {resident_pages * page, virtual_pages * page};
}

double BootTimeSeconds() {
  std::ifstream file("/proc/stat");
  for (std::string key; file >> key;) {
    if (key == "btime") {
      double seconds = 0;
      file >> seconds;
      return seconds;
    }
    file.ignore(1 << 20, '\n');
  }
  return 0.0;
}

double OpenFileDescriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0.0;
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the descriptor opendir itself holds
}

}  // namespace

void AddProcessMetrics(Registry* registry) {
  registry->AddCollected("process_cpu_seconds_total",
                         "Total user and system CPU time spent in "
                         "seconds.",
                         MetricType::kCounter, {}, [] {
                           rusage usage{};
                           getrusage(RUSAGE_SELF, &usage);
                           return One(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                                      (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6);
                         });
  registry->AddCollected("process_resident_memory_bytes", "Resident memory size in bytes.",
                         MetricType::kGauge, {}, [] { return One(MemoryBytes().first); });
  registry->AddCollected("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                         MetricType::kGauge, {}, [] { return One(MemoryBytes().second); });
  registry->AddCollected("process_open_fds", "Number of open file descriptors.", MetricType::kGauge,
                         {}, [] { return One(OpenFileDescriptors()); });
  registry->AddCollected("process_max_fds", "Maximum number of open file descriptors.",
                         MetricType::kGauge, {}, [] {
                           rlimit limit{};
                           getrlimit(RLIMIT_NOFILE, &limit);
                           return One(static_cast<double>(limit.rlim_cur));
                         });
  // Fixed for the process's life: computed once.
  const double start_time =
      BootTimeSeconds() + StatField(22) / static_cast<double>(sysconf(_SC_CLK_TCK));
  registry->AddCollected("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.",
                         MetricType::kGauge, {}, [start_time] { return One(start_time); });
  registry->AddCollected("process_threads", "Number of OS threads in the process.",
                         MetricType::kGauge, {}, [] { return One(StatField(20)); });
}

}  // namespace selene::metrics
