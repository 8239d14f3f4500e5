// Same spec, same seed, same model: on the CPU a job's best.pt depends only on its spec, its seed
// and its thread count. Identical jobs interleaved with others (two at a time, sharing the
// process's global torch state) give bit-identical weights, and a job interrupted by a shutdown
// and resumed by the next server equals one that ran straight through.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "server/api/selene_server.h"
#include "tests/server/api/api_test_util.h"
#include "tests/testing/files.h"

namespace selene::api {
namespace {

namespace fs = std::filesystem;
using testing::TestClient;

class ReproducibilityTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("selene-reproducibility"); }
  void TearDown() override {
    servers_.clear();
    fs::remove_all(dir_);
  }

  SeleneServer* Start(const SeleneServerOptions& options) {
    StatusOr<std::unique_ptr<SeleneServer>> server = SeleneServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    servers_.push_back(std::move(server).value());
    return servers_.back().get();
  }

  std::string dir_;
  std::vector<std::unique_ptr<SeleneServer>> servers_;
};

// The sha256 the server lists for one of a job's files.
std::string ArtifactSha256(TestClient& client, const std::string& job_id, const std::string& name) {
  grpc::ClientContext context;
  client.Prepare(&context);
  v1::ListArtifactsRequest request;
  request.set_job_id(job_id);
  v1::ListArtifactsResponse response;
  const grpc::Status listed = client.training().ListArtifacts(&context, request, &response);
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  for (const v1::Artifact& artifact : response.artifacts()) {
    if (artifact.name() == name) return artifact.sha256();
  }
  ADD_FAILURE() << job_id << " has no " << name;
  return "";
}

// Randomness from every source a run has: initial weights, shuffling, augmentation, dropout.
v1::JobSpec RandomnessEverywhere(const std::string& name, int64_t epochs) {
  v1::JobSpec spec = testing::MoonSpec(name, epochs);
  spec.mutable_model()->mutable_unet()->set_dropout(0.3);
  v1::AugmentationSpec* augmentation = spec.mutable_data()->mutable_augmentation();
  augmentation->set_hflip(true);
  augmentation->set_rotation_degrees(10);
  return spec;
}

TEST_F(ReproducibilityTest, IdenticalJobsInterleavedWithOthersGiveIdenticalWeights) {
  SeleneServerOptions options = testing::TestServerOptions(dir_);
  options.jobs_per_device = 2;  // two jobs at once on the CPU, one thread each
  SeleneServer* server = Start(options);
  ASSERT_NE(server, nullptr);
  TestClient client(server->address());

  v1::JobSpec other_seed = RandomnessEverywhere("same", 2);
  other_seed.mutable_training()->set_seed(7);
  v1::JobSpec classifier = testing::ClassifierSpec("other");
  classifier.mutable_model()->mutable_classifier()->set_dropout(0.5);
  std::vector<std::string> same;
  same.push_back(client.SubmitOk(RandomnessEverywhere("same", 2)));
  const std::string first_other = client.SubmitOk(classifier);
  same.push_back(client.SubmitOk(RandomnessEverywhere("same", 2)));
  const std::string seeded = client.SubmitOk(other_seed);
  same.push_back(client.SubmitOk(RandomnessEverywhere("same", 2)));
  for (const std::string& id : {same[0], same[1], same[2], first_other, seeded}) {
    const v1::Job done = client.WaitTerminal(id);
    ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << done.error();
  }

  const std::string reference = ArtifactSha256(client, same[0], "best.pt");
  EXPECT_EQ(ArtifactSha256(client, same[1], "best.pt"), reference);
  EXPECT_EQ(ArtifactSha256(client, same[2], "best.pt"), reference);
  // The hash does tell models apart: another seed gives other weights.
  EXPECT_NE(ArtifactSha256(client, seeded, "best.pt"), reference);
}

TEST_F(ReproducibilityTest, AJobResumedAfterAShutdownEqualsOneThatRanStraightThrough) {
  const SeleneServerOptions options = testing::TestServerOptions(dir_);
  std::string interrupted;
  {
    SeleneServer* server = Start(options);
    ASSERT_NE(server, nullptr);
    TestClient client(server->address());
    interrupted = client.SubmitOk(RandomnessEverywhere("resumed", 12));
    client.WaitFor(interrupted, [](const v1::Job& job) { return job.current_epoch() >= 2; });
    ASSERT_TRUE(server->Shutdown().ok());
    servers_.clear();
  }
  SeleneServer* server = Start(options);
  ASSERT_NE(server, nullptr);
  TestClient client(server->address());
  const std::string straight = client.SubmitOk(RandomnessEverywhere("resumed", 12));
  const v1::Job resumed = client.WaitTerminal(interrupted);
  ASSERT_EQ(resumed.state(), v1::JOB_STATE_SUCCEEDED) << resumed.error();
  ASSERT_EQ(resumed.resumes(), 1) << "the shutdown must have interrupted the job";
  ASSERT_EQ(client.WaitTerminal(straight).state(), v1::JOB_STATE_SUCCEEDED);

  EXPECT_EQ(ArtifactSha256(client, interrupted, "best.pt"),
            ArtifactSha256(client, straight, "best.pt"));
  EXPECT_EQ(client.Get(interrupted).best_value(), client.Get(straight).best_value());
}

}  // namespace
}  // namespace selene::api
