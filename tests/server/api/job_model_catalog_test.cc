// Tests server/api/job_model_catalog.h on a real job store whose jobs are moved by hand: unknown
// and unfinished jobs are refused with the messages clients see, succeeded jobs become records
// (checkpoint path, resolved spec, finish order, best value), and ListServable pages through
// every succeeded job.
#include "server/api/job_model_catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/server/api/api_test_util.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using ::testing::UnorderedElementsAre;

class JobModelCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("selene-job-model-catalog");
    StatusOr<std::unique_ptr<jobs::JobStore>> store =
        jobs::JobStore::Open((fs::path(dir_) / "selene.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(store).value();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  std::string Succeeded(const std::string& name) {
    const std::string id =
        store_->Submit(::selene::testing::MustResolve(testing::MoonSpec(name, 2)), "")->job.id();
    EXPECT_TRUE(store_->Start(id, "cpu").ok());
    v1::EpochEnd epoch;
    epoch.set_epoch(1);
    epoch.set_epochs(2);
    epoch.set_monitor("dice");
    epoch.set_monitor_value(0.75);
    epoch.set_is_best(true);
    EXPECT_TRUE(store_->RecordEpoch(id, epoch).ok());
    EXPECT_TRUE(store_->Transition(id, v1::JOB_STATE_SUCCEEDED).ok());
    return id;
  }

  std::string dir_;
  std::unique_ptr<jobs::JobStore> store_;
};

TEST_F(JobModelCatalogTest, UnknownAndUnfinishedJobsAreRefused) {
  JobModelCatalog catalog(store_.get(), dir_);
  const Status unknown = catalog.Find("job-9").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(), "job job-9 not found");

  const std::string queued =
      store_->Submit(::selene::testing::MustResolve(testing::MoonSpec("q", 2)), "")->job.id();
  Status status = catalog.Find(queued).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), queued + " is QUEUED; its model is servable once it succeeds");
  ASSERT_TRUE(store_->Start(queued, "cpu").ok());
  status = catalog.Find(queued).status();
  EXPECT_EQ(status.message(), queued + " is RUNNING; its model is servable once it succeeds");
}

TEST_F(JobModelCatalogTest, SucceededJobsAreServableRecords) {
  const std::string first = Succeeded("first");
  const std::string second = Succeeded("second");
  store_->Submit(::selene::testing::MustResolve(testing::MoonSpec("waiting", 2)), "").IgnoreError();
  JobModelCatalog catalog(store_.get(), dir_);
  StatusOr<serving::ServableModelRecord> record = catalog.Find(first);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->job_id, first);
  EXPECT_EQ(record->name, "first");
  EXPECT_EQ(record->checkpoint_path, (fs::path(dir_) / "jobs" / first / "best.pt").string());
  EXPECT_EQ(record->spec.task(), v1::TASK_BINARY_SEGMENTATION);
  EXPECT_EQ(record->spec.data().image_size(), 32);
  EXPECT_EQ(record->monitor, "dice");
  EXPECT_DOUBLE_EQ(record->best_value, 0.75);
  StatusOr<serving::ServableModelRecord> later = catalog.Find(second);
  ASSERT_TRUE(later.ok());
  EXPECT_GE(later->finish_order, record->finish_order);

  StatusOr<std::vector<serving::ServableModelRecord>> all = catalog.ListServable();
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::string> ids;
  for (const auto& r : *all) ids.push_back(r.job_id);
  EXPECT_THAT(ids, UnorderedElementsAre(first, second));
}

}  // namespace
}  // namespace selene::api
