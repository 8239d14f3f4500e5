// The starting point of the tests that run jobs (job runner, scheduler): a temporary folder with
// a job store (jobs.db), a state dir, an empty data root (file data sets are missing), and runner
// options for one training thread with a progress event on every step.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <utility>

#include "absl/time/time.h"
#include "server/jobs/job_runner.h"
#include "server/jobs/job_store.h"
#include "tests/testing/files.h"
#include "tests/testing/status_matchers.h"

namespace selene::jobs {

class JobTestFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_.path();
    StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open((dir_ / "jobs.db").string());
    ASSERT_OK(store);
    store_ = std::move(store).value();
    runner_options_.state_dir = (dir_ / "state").string();
    runner_options_.data_root = (dir_ / "data").string();
    std::filesystem::create_directories(dir_ / "data");  // empty: file data sets are missing
    runner_options_.training_threads = 1;
    runner_options_.progress_interval = absl::ZeroDuration();  // every step: tests count them
  }

  ::selene::testing::TempDir temp_{"selene-jobs-test"};  // removed after everything below
  std::filesystem::path dir_;
  std::unique_ptr<JobStore> store_;
  JobRunnerOptions runner_options_;
};

}  // namespace selene::jobs
