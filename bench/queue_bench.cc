// selene-queue-bench: the job store's two engines side by side in one run, as the scheduler uses
// them: (1) scheduling overhead, trivial jobs claimed and finished per second by 1, 2 and 4
// workers (ClaimNext then Transition to SUCCEEDED, until the queue is empty), SQLite against
// PostgreSQL, with claim latency and a check that every job was claimed exactly once; (2) fail-over
// against the lease on PostgreSQL, from the moment a worker stops renewing its lease to another
// worker's claim of its job. PostgreSQL is a private server (tests/testing/postgres_server.h:
// initdb into a temporary folder, a Unix socket); SQLite a file in a temporary folder. Prints a
// Markdown section for docs/benchmarks.md; progress goes to stderr. Exits 1 when a job is lost,
// claimed twice, or a stale lease's write is accepted.
//
//   selene-queue-bench [--jobs 1000] [--workers 1,2,4] [--repeats 3] [--leases 1,2,4]
//                      [--poll_ms 100] [--failover_repeats 3] [--nofailover]
#include <sqlite3.h>
#include <sys/statfs.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "server/jobs/job_store.h"
#include "server/jobs/sql/postgres_connection.h"
#include "tests/testing/files.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/tiny_job_specs.h"

ABSL_FLAG(int, jobs, 1000, "Jobs queued before each claim run (the workers drain them).");
ABSL_FLAG(std::vector<std::string>, workers, std::vector<std::string>({"1", "2", "4"}),
          "Worker counts for the claim runs (one thread each).");
ABSL_FLAG(int, repeats, 3, "Runs of each claim configuration; the table shows the median.");
ABSL_FLAG(std::vector<std::string>, leases, std::vector<std::string>({"1", "2", "4"}),
          "Lease lengths in seconds for the fail-over runs.");
ABSL_FLAG(int, poll_ms, 100,
          "How often the surviving worker calls ClaimNext in the fail-over runs (the server's "
          "scheduler polls every 500 ms at most, and at once on a nudge).");
ABSL_FLAG(int, failover_repeats, 3, "Fail-over runs per lease; the table shows median and range.");
ABSL_FLAG(bool, failover, true, "Run section 2 (fail-over against the lease).");

namespace {

using selene::Status;
using selene::StatusOr;
using selene::jobs::ClaimedJob;
using selene::jobs::JobStore;
using selene::testing::PostgresServer;

// The claim runs' engines. kSqliteShared is how one server really uses its SQLite file: one
// JobStore (one connection behind a mutex) shared by its threads.
enum class Engine { kSqlite, kSqliteShared, kPostgres };

const char* EngineName(Engine engine) {
  switch (engine) {
    case Engine::kSqlite:
      return "SQLite, a store per worker";
    case Engine::kSqliteShared:
      return "SQLite, one shared store";
    case Engine::kPostgres:
      return "PostgreSQL, a store per worker";
  }
  return "?";
}

int Fail(const std::string& message) {
  std::cout << "\n**selene-queue-bench FAILED: " << message << "**" << std::endl;
  std::cerr << "selene-queue-bench: " << message << std::endl;
  return 1;
}

void Log(const std::string& message) { std::cerr << "[queue-bench] " << message << std::endl; }

// The q-quantile (0..1) of `sorted`, nearest rank; 0 when empty (as bench_common's Percentile).
double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return Percentile(values, 0.5);
}

StatusOr<std::vector<int>> ParseInts(const std::vector<std::string>& texts, const char* flag) {
  std::vector<int> values;
  for (const std::string& text : texts) {
    int value = 0;
    if (!absl::SimpleAtoi(text, &value) || value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": \"", text, "\" is not a positive integer"));
    }
    values.push_back(value);
  }
  return values;
}

StatusOr<std::unique_ptr<JobStore>> OpenStore(Engine engine, const std::string& location) {
  return engine == Engine::kPostgres ? JobStore::OpenPostgres(location) : JobStore::Open(location);
}

// One claim run: `jobs` queued, then `workers` threads drain the queue.
struct ClaimRun {
  double seconds = 0;
  std::vector<double> latencies_ms;  // of the successful ClaimNext calls, sorted
};

StatusOr<ClaimRun> RunClaims(Engine engine, const std::string& location, int jobs, int workers) {
  // Queueing is not timed; the first store also creates the tables, before the workers open.
  std::vector<std::unique_ptr<JobStore>> stores;
  SELENE_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> first, OpenStore(engine, location));
  stores.push_back(std::move(first));
  const selene::spec::ResolvedJobSpec spec =
      selene::testing::MustResolve(selene::testing::MoonSpec("bench", 1));
  std::set<std::string> queued;
  for (int i = 0; i < jobs; ++i) {
    SELENE_ASSIGN_OR_RETURN(selene::jobs::SubmitResult submitted, stores[0]->Submit(spec, ""));
    queued.insert(submitted.job.id());
  }
  if (engine != Engine::kSqliteShared) {
    for (int i = 1; i < workers; ++i) {
      SELENE_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, OpenStore(engine, location));
      stores.push_back(std::move(store));
    }
  }

  struct Worker {
    std::vector<std::string> claimed;
    std::vector<double> latencies_ms;
    Status error;
  };
  std::vector<Worker> results(workers);
  absl::Notification go;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      JobStore& store = *stores[engine == Engine::kSqliteShared ? 0 : w];
      Worker& me = results[w];
      const std::string name = absl::StrCat("worker-", w + 1);
      go.WaitForNotification();
      while (true) {
        const absl::Time start = absl::Now();
        StatusOr<std::optional<ClaimedJob>> claim = store.ClaimNext(name, "cpu", absl::Seconds(30));
        const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
        if (!claim.ok()) {
          me.error = claim.status();
          return;
        }
        if (!claim->has_value()) return;  // the queue is empty
        me.latencies_ms.push_back(ms);
        me.claimed.push_back((*claim)->lease.job_id);
        if (auto done = store.Transition((*claim)->lease, selene::v1::JOB_STATE_SUCCEEDED);
            !done.ok()) {
          me.error = done.status();
          return;
        }
      }
    });
  }
  const absl::Time start = absl::Now();
  go.Notify();
  for (std::thread& thread : threads) thread.join();
  ClaimRun run;
  run.seconds = absl::ToDoubleSeconds(absl::Now() - start);

  // Every job claimed exactly once, and every job SUCCEEDED in the store.
  std::map<std::string, int> claims;
  for (int w = 0; w < workers; ++w) {
    if (!results[w].error.ok()) {
      return absl::InternalError(
          absl::StrCat("worker-", w + 1, " failed: ", results[w].error.ToString()));
    }
    for (const std::string& id : results[w].claimed) {
      if (++claims[id] > 1) {
        return absl::InternalError(absl::StrCat(id, " was claimed more than once"));
      }
    }
    run.latencies_ms.insert(run.latencies_ms.end(), results[w].latencies_ms.begin(),
                            results[w].latencies_ms.end());
  }
  for (const std::string& id : queued) {
    if (claims.count(id) == 0) return absl::InternalError(absl::StrCat(id, " was never claimed"));
  }
  if (claims.size() != queued.size()) {
    return absl::InternalError(absl::StrCat(claims.size(), " jobs claimed, ", queued.size(),
                                            " queued: a claimed job was not one of them"));
  }
  SELENE_ASSIGN_OR_RETURN(auto counts, stores[0]->CountByState());
  if (counts[selene::v1::JOB_STATE_SUCCEEDED] != jobs) {
    return absl::InternalError(absl::StrCat(counts[selene::v1::JOB_STATE_SUCCEEDED], " of ", jobs,
                                            " jobs SUCCEEDED in the store"));
  }
  std::sort(run.latencies_ms.begin(), run.latencies_ms.end());
  return run;
}

// One fail-over: worker A claims the only queued job with `lease`, renews it once a third of the
// lease later (as the server's heartbeat does), then dies (stops renewing). Worker B, on its own
// connection, polls ClaimNext every `poll` from a random phase. Returns the seconds from the start
// of A's last renewal to B's claim of the job, after checking that B got A's job with a newer
// token, not before the lease ran out, and that A's late write is refused.
StatusOr<double> RunFailover(JobStore& a, JobStore& b, absl::Duration lease, absl::Duration poll,
                             std::mt19937& random) {
  const selene::spec::ResolvedJobSpec spec =
      selene::testing::MustResolve(selene::testing::MoonSpec("failover", 1));
  SELENE_ASSIGN_OR_RETURN(selene::jobs::SubmitResult submitted, a.Submit(spec, ""));
  const std::string id = submitted.job.id();
  SELENE_ASSIGN_OR_RETURN(std::optional<ClaimedJob> held, a.ClaimNext("worker-a", "cpu", lease));
  if (!held.has_value() || held->lease.job_id != id) {
    return absl::InternalError(absl::StrCat("worker A did not get ", id));
  }
  absl::SleepFor(lease / 3);
  const absl::Time stopped = absl::Now();  // the start of A's last renewal
  SELENE_RETURN_IF_ERROR(a.RenewLease(held->lease, lease).status());

  const absl::Duration phase = absl::Microseconds(
      std::uniform_int_distribution<int64_t>(0, absl::ToInt64Microseconds(poll) - 1)(random));
  absl::SleepFor(phase);
  const absl::Time polls_from = absl::Now();
  const absl::Time give_up = stopped + lease + absl::Seconds(10);
  for (int64_t k = 1;; ++k) {
    SELENE_ASSIGN_OR_RETURN(std::optional<ClaimedJob> got,
                            b.ClaimNext("worker-b", "cpu", absl::Seconds(30)));
    const absl::Time now = absl::Now();
    if (got.has_value()) {
      const double seconds = absl::ToDoubleSeconds(now - stopped);
      if (got->lease.job_id != id) {
        return absl::InternalError(
            absl::StrCat("worker B claimed ", got->lease.job_id, ", expected ", id));
      }
      if (got->lease.token <= held->lease.token) {
        return absl::InternalError(absl::StrCat("worker B's token ", got->lease.token,
                                                " is not newer than A's ", held->lease.token));
      }
      if (seconds < absl::ToDoubleSeconds(lease)) {
        return absl::InternalError(absl::StrFormat(
            "worker B claimed %s %.3f s after A's last renewal, before the %s lease ran out", id,
            seconds, absl::FormatDuration(lease)));
      }
      const Status late = a.Transition(held->lease, selene::v1::JOB_STATE_SUCCEEDED).status();
      if (!JobStore::IsLeaseLost(late)) {
        return absl::InternalError(
            absl::StrCat("worker A's write after losing its lease was not refused as lease lost: ",
                         late.ToString()));
      }
      SELENE_RETURN_IF_ERROR(b.Transition(got->lease, selene::v1::JOB_STATE_SUCCEEDED).status());
      return seconds;
    }
    if (now > give_up) {
      return absl::InternalError(absl::StrCat("worker B did not get ", id,
                                              " within 10 s after the lease of ",
                                              absl::FormatDuration(lease), " ran out"));
    }
    absl::SleepFor(polls_from + k * poll - absl::Now());
  }
}

std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

// What the temporary folder (the SQLite file and PostgreSQL's data) sits on.
std::string FileSystemOf(const std::string& path) {
  struct statfs info {};
  if (::statfs(path.c_str(), &info) != 0) return "unknown file system";
  switch (static_cast<unsigned long>(info.f_type)) {
    case 0x01021994:
      return "tmpfs (memory)";
    case 0x794c7630:
      return "overlayfs";
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
  }
  return absl::StrFormat("file system 0x%x", static_cast<unsigned long>(info.f_type));
}

// Name = value of PostgreSQL settings, for the machine line.
std::string PostgresSettings(selene::jobs::sql::PostgresConnection& db,
                             const std::vector<std::string>& names) {
  std::vector<std::string> parts;
  for (const std::string& name : names) {
    StatusOr<selene::jobs::sql::SqlRows> rows = db.Query(absl::StrCat("SHOW ", name));
    parts.push_back(
        absl::StrCat(name, " = ", rows.ok() && !rows->empty() ? (*rows)[0].Text(0) : "?"));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int jobs = absl::GetFlag(FLAGS_jobs);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const int failover_repeats = absl::GetFlag(FLAGS_failover_repeats);
  const absl::Duration poll = absl::Milliseconds(absl::GetFlag(FLAGS_poll_ms));
  StatusOr<std::vector<int>> worker_counts = ParseInts(absl::GetFlag(FLAGS_workers), "workers");
  if (!worker_counts.ok()) return Fail(std::string(worker_counts.status().message()));
  StatusOr<std::vector<int>> leases_s = ParseInts(absl::GetFlag(FLAGS_leases), "leases");
  if (!leases_s.ok()) return Fail(std::string(leases_s.status().message()));
  if (jobs <= 0 || repeats <= 0 || failover_repeats <= 0 || poll <= absl::ZeroDuration()) {
    return Fail("--jobs, --repeats, --failover_repeats and --poll_ms must be positive");
  }

  Log("starting a private PostgreSQL server");
  StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  if (!server.ok()) return Fail(absl::StrCat("PostgreSQL: ", server.status().ToString()));
  int databases = 0;
  auto fresh_database = [&]() {
    return (*server)->CreateDatabase(absl::StrCat("queue_bench_", ++databases));
  };
  const selene::testing::TempDir sqlite_dir("selene-queue-bench");
  if (sqlite_dir.path().empty()) return Fail("cannot make a temporary folder for SQLite");

  // The machine, and the settings both engines run with.
  std::string postgres_version = "?";
  std::string postgres_settings = "?";
  {
    const std::string uri = fresh_database();
    if (uri.empty()) return Fail("cannot create a PostgreSQL database");
    auto db = selene::jobs::sql::PostgresConnection::Open(uri);
    if (!db.ok()) return Fail(db.status().ToString());
    if (auto rows = (*db)->Query("SELECT version()"); rows.ok() && !rows->empty()) {
      postgres_version = (*rows)[0].Text(0);
    }
    postgres_settings = PostgresSettings(
        **db, {"fsync", "synchronous_commit", "full_page_writes", "shared_buffers"});
  }

  // 1. Claim runs: engine x workers x repeats, the engines interleaved within each repeat so a
  // burst of load on the machine hits all of them alike.
  const std::vector<Engine> engines = {Engine::kSqlite, Engine::kSqliteShared, Engine::kPostgres};
  struct Summary {
    std::vector<double> per_second, p50_ms, p99_ms;
  };
  std::map<std::pair<Engine, int>, Summary> summaries;
  int sqlite_files = 0;
  for (int repeat = 1; repeat <= repeats; ++repeat) {
    for (int workers : *worker_counts) {
      for (Engine engine : engines) {
        std::string location;
        if (engine == Engine::kPostgres) {
          location = fresh_database();
          if (location.empty()) return Fail("cannot create a PostgreSQL database");
        } else {
          location = sqlite_dir / absl::StrCat("jobs_", ++sqlite_files, ".db");
        }
        StatusOr<ClaimRun> run = RunClaims(engine, location, jobs, workers);
        if (!run.ok()) {
          return Fail(absl::StrCat(EngineName(engine), ", ", workers, " workers, run ", repeat,
                                   ": ", run.status().ToString()));
        }
        Summary& summary = summaries[{engine, workers}];
        summary.per_second.push_back(jobs / run->seconds);
        summary.p50_ms.push_back(Percentile(run->latencies_ms, 0.5));
        summary.p99_ms.push_back(Percentile(run->latencies_ms, 0.99));
        Log(
            absl::StrFormat("%s, %d workers, run %d/%d: %d jobs in %.2f s (%.0f/s), claim p50 "
                            "%.2f ms, p99 %.2f ms; each claimed once",
                            EngineName(engine), workers, repeat, repeats, jobs, run->seconds,
                            jobs / run->seconds, summary.p50_ms.back(), summary.p99_ms.back()));
      }
    }
  }

  // 2. Fail-over against the lease, PostgreSQL only.
  struct Failover {
    int lease_s = 0;
    std::vector<double> seconds;
  };
  std::vector<Failover> failovers;
  if (absl::GetFlag(FLAGS_failover)) {
    const std::string uri = fresh_database();
    if (uri.empty()) return Fail("cannot create a PostgreSQL database");
    auto a = JobStore::OpenPostgres(uri);
    if (!a.ok()) return Fail(a.status().ToString());
    auto b = JobStore::OpenPostgres(uri);
    if (!b.ok()) return Fail(b.status().ToString());
    std::mt19937 random(16);
    for (int lease_s : *leases_s) {
      Failover& failover = failovers.emplace_back();
      failover.lease_s = lease_s;
      for (int repeat = 1; repeat <= failover_repeats; ++repeat) {
        StatusOr<double> seconds = RunFailover(**a, **b, absl::Seconds(lease_s), poll, random);
        if (!seconds.ok()) {
          return Fail(absl::StrCat("fail-over, lease ", lease_s, " s, run ", repeat, ": ",
                                   seconds.status().ToString()));
        }
        failover.seconds.push_back(*seconds);
        Log(absl::StrFormat("fail-over, lease %d s, run %d/%d: %.3f s", lease_s, repeat,
                            failover_repeats, *seconds));
      }
    }
  }

  // The report.
  std::cout << absl::StrFormat(
      "Machine: %d cores (%s); the SQLite file and PostgreSQL's data in %s (%s).\n"
      "PostgreSQL: %s, the private server of `tests/testing/postgres_server.h` (initdb, a Unix "
      "socket, no TCP): %s.\n"
      "SQLite %s: the store's settings (WAL, synchronous = NORMAL, busy_timeout 5 s).\n\n",
      std::thread::hardware_concurrency(), CpuModel(), sqlite_dir.path(),
      FileSystemOf(sqlite_dir.path()), postgres_version, postgres_settings, sqlite3_libversion());

  std::cout << absl::StrFormat(
      "### 1. Scheduling overhead: trivial jobs claimed per second\n\n"
      "%d jobs queued, then drained by N worker threads, each looping ClaimNext(worker, \"cpu\", "
      "lease 30 s) and Transition(lease, SUCCEEDED); claims/s = claim + finish cycles per second "
      "of wall time, median of %d runs. Every run checked that each job was claimed exactly once "
      "and ended SUCCEEDED.\n\n",
      jobs, repeats);
  std::cout << "| workers | SQLite, a store per worker | SQLite, one shared store | PostgreSQL, "
               "a store per worker | PostgreSQL ÷ SQLite (per worker) | PostgreSQL ÷ SQLite "
               "(shared) |\n|---:|---:|---:|---:|---:|---:|\n";
  for (int workers : *worker_counts) {
    const double sqlite = Median(summaries[{Engine::kSqlite, workers}].per_second);
    const double shared = Median(summaries[{Engine::kSqliteShared, workers}].per_second);
    const double postgres = Median(summaries[{Engine::kPostgres, workers}].per_second);
    std::cout << absl::StrFormat("| %d | %.0f/s | %.0f/s | %.0f/s | %.2fx | %.2fx |\n", workers,
                                 sqlite, shared, postgres, postgres / sqlite, postgres / shared);
  }
  std::cout << "\nClaim latency (one ClaimNext call: requeue expired leases, fail dead "
               "dependencies, pick and start the next job, in one transaction), p50 / p99 in ms, "
               "median over the runs:\n\n"
               "| workers | SQLite, a store per worker | SQLite, one shared store | PostgreSQL, "
               "a store per worker |\n|---:|---:|---:|---:|\n";
  for (int workers : *worker_counts) {
    std::cout << "| " << workers;
    for (Engine engine : engines) {
      const Summary& summary = summaries[{engine, workers}];
      std::cout << absl::StrFormat(" | %.2f / %.2f", Median(summary.p50_ms),
                                   Median(summary.p99_ms));
    }
    std::cout << " |\n";
  }
  std::cout << "\nSQLite with a store per worker is several connections on one file, each "
               "waiting for the file's write lock (busy_timeout); a real SQLite deployment is "
               "one server, whose threads share its one store (one connection behind a mutex): "
               "the shared column. Only PostgreSQL serves several servers.\n";

  if (!failovers.empty()) {
    std::cout << absl::StrFormat(
        "\n### 2. Fail-over against the lease (PostgreSQL)\n\n"
        "Worker A claims a job with the lease, renews it once a third of the lease later (the "
        "server's heartbeat cadence), then stops renewing; worker B, on its own connection, calls "
        "ClaimNext every %d ms from a random phase (`--poll_ms`; the server's scheduler polls "
        "every 500 ms at most, `SchedulerOptions::poll_interval`). Measured: from the start of "
        "A's last renewal to B's claim of that job, %d runs per lease. Every run checked that B "
        "got A's job with a newer fencing token, not before the lease ran out, and that A's late "
        "Transition was refused as lease lost. SQLite is not measured: its one server gives "
        "leases that never expire and requeues its own RUNNING jobs at once on restart "
        "(RecoverAfterRestart).\n\n"
        "| lease | fail-over, median | min - max | median ÷ lease | bound: lease + poll |\n"
        "|---:|---:|---:|---:|---:|\n",
        absl::GetFlag(FLAGS_poll_ms), failover_repeats);
    for (const Failover& failover : failovers) {
      const auto [low, high] =
          std::minmax_element(failover.seconds.begin(), failover.seconds.end());
      const double median = Median(failover.seconds);
      std::cout << absl::StrFormat("| %d s | %.3f s | %.3f - %.3f s | %.3f | %.1f s |\n",
                                   failover.lease_s, median, *low, *high, median / failover.lease_s,
                                   failover.lease_s + absl::ToDoubleSeconds(poll));
    }
  }
  return 0;
}
