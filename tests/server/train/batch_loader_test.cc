// BatchLoader: coverage and order of a pass, batch sizes, normalisation, targets per task, resizing
// to the model's input, what the transform sees, the prefetching worker (same batches as inline,
// clean shutdown, errors carried to Next()).
#include "server/train/batch_loader.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace selene::train {
namespace {

// Image i is filled with the value i and labelled i, so every batch can be traced.
TensorDataset Indexed(int64_t n, int64_t channels = 3, int64_t size = 4) {
  TensorDataset data;
  data.task = Task::kClassification;
  data.images = torch::arange(n, torch::kLong)
                    .to(torch::kUInt8)
                    .view({n, 1, 1, 1})
                    .expand({n, channels, size, size})
                    .contiguous();
  data.targets = torch::arange(n, torch::kLong);
  for (int64_t i = 0; i < n; ++i) data.class_names.push_back("c" + std::to_string(i));
  return data;
}

BatchLoaderOptions Options(int64_t batch_size, bool prefetch = true) {
  BatchLoaderOptions options;
  options.batch_size = batch_size;
  options.prefetch = prefetch;
  return options;
}

std::vector<int64_t> ToVector(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

struct Pass {
  std::vector<int64_t> order;  // indices in the order handed out
  std::vector<int64_t> sizes;  // batch sizes
  std::vector<Batch> batches;
};

Pass RunEpoch(BatchLoader& loader, int64_t epoch) {
  Pass pass;
  loader.StartEpoch(epoch);
  while (std::optional<Batch> batch = loader.Next()) {
    const std::vector<int64_t> ids = ToVector(batch->indices);
    pass.order.insert(pass.order.end(), ids.begin(), ids.end());
    pass.sizes.push_back(batch->images.size(0));
    pass.batches.push_back(std::move(*batch));
  }
  return pass;
}

TEST(BatchLoaderTest, EveryIndexOncePerEpoch) {
  for (bool prefetch : {true, false}) {
    const TensorDataset data = Indexed(10);
    BatchLoader loader(data, Options(3, prefetch));
    EXPECT_EQ(loader.batches_per_epoch(), 4);
    const Pass pass = RunEpoch(loader, 0);
    EXPECT_EQ(pass.sizes, (std::vector<int64_t>{3, 3, 3, 1}));
    std::vector<int64_t> sorted = pass.order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, ToVector(torch::arange(10)));
    for (const Batch& batch : pass.batches) {
      // Targets and images belong to the indices handed out with them.
      EXPECT_TRUE(torch::equal(batch.targets, batch.indices));
      EXPECT_EQ(batch.targets.scalar_type(), torch::kLong);
      EXPECT_EQ(batch.images.scalar_type(), torch::kFloat);
      const torch::Tensor pixel = batch.images.select(1, 0).select(1, 0).select(1, 0);
      const torch::Tensor expected = (batch.indices.to(torch::kFloat) / 255.0 - 0.5) / 0.25;
      EXPECT_TRUE(torch::allclose(pixel, expected, 1e-5, 1e-5));
    }
    // The pass is over until the next StartEpoch.
    EXPECT_FALSE(loader.Next().has_value());
  }
}

TEST(BatchLoaderTest, DropLastLeavesOutTheShortBatch) {
  const TensorDataset data = Indexed(10);
  BatchLoaderOptions options = Options(3);
  options.drop_last = true;
  BatchLoader loader(data, options);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  const Pass pass = RunEpoch(loader, 0);
  EXPECT_EQ(pass.sizes, (std::vector<int64_t>{3, 3, 3}));
  EXPECT_EQ(std::set<int64_t>(pass.order.begin(), pass.order.end()).size(), 9u);
  // An exact multiple loses nothing.
  const TensorDataset even = Indexed(9);
  BatchLoader exact(even, options);
  EXPECT_EQ(exact.batches_per_epoch(), 3);
}

TEST(BatchLoaderTest, OrderDependsOnlyOnSeedAndEpoch) {
  const TensorDataset data = Indexed(50);
  BatchLoader a(data, Options(8));
  BatchLoader b(data, Options(8, /*prefetch=*/false));
  const std::vector<int64_t> a0 = RunEpoch(a, 0).order;
  const std::vector<int64_t> a1 = RunEpoch(a, 1).order;
  EXPECT_NE(a0, a1);
  EXPECT_NE(a0, ToVector(torch::arange(50)));
  // A fresh loader (a resumed run) sees the same order for the same epoch, in any sequence.
  EXPECT_EQ(RunEpoch(b, 1).order, a1);
  EXPECT_EQ(RunEpoch(b, 0).order, a0);
  EXPECT_EQ(RunEpoch(a, 0).order, a0);
  BatchLoaderOptions other = Options(8);
  other.seed = 2;
  BatchLoader c(data, other);
  EXPECT_NE(RunEpoch(c, 0).order, a0);
  BatchLoaderOptions sequential = Options(8);
  sequential.shuffle = false;
  BatchLoader d(data, sequential);
  EXPECT_EQ(RunEpoch(d, 3).order, ToVector(torch::arange(50)));
}

TEST(BatchLoaderTest, TargetsPerTask) {
  TensorDataset binary;
  binary.task = Task::kBinarySegmentation;
  binary.class_names = {"rock"};
  binary.images = torch::zeros({4, 3, 5, 5}, torch::kUInt8);
  binary.targets = (torch::arange(4 * 25).view({4, 5, 5}) % 2).to(torch::kUInt8);
  BatchLoader binary_loader(binary, Options(4));
  binary_loader.StartEpoch(0);
  std::optional<Batch> b = binary_loader.Next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->targets.scalar_type(), torch::kFloat);
  EXPECT_EQ(b->targets.sizes(), (std::vector<int64_t>{4, 5, 5}));
  EXPECT_TRUE(
      torch::equal(b->targets, binary.targets.index_select(0, b->indices).to(torch::kFloat)));

  TensorDataset multi = binary;
  multi.task = Task::kMultiClassSegmentation;
  multi.class_names = {"background", "a", "b"};
  multi.targets = (torch::arange(4 * 25).view({4, 5, 5}) % 3);
  BatchLoader multi_loader(multi, Options(2));
  multi_loader.StartEpoch(0);
  std::optional<Batch> m = multi_loader.Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->targets.scalar_type(), torch::kLong);
  EXPECT_EQ(m->targets.sizes(), (std::vector<int64_t>{2, 5, 5}));
  EXPECT_TRUE(torch::equal(m->targets, multi.targets.index_select(0, m->indices)));
}

TEST(NormalizeImagesTest, PerChannelStatistics) {
  const torch::Tensor images =
      torch::tensor({0, 51, 255}, torch::kLong).to(torch::kUInt8).view({1, 3, 1, 1});
  Normalization norm;
  norm.mean = {0.0, 0.2, 0.5};
  norm.std = {1.0, 0.5, 0.25};
  const torch::Tensor out = NormalizeImages(images, norm, torch::kCPU);
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  // (0 - 0) / 1 = 0;  (0.2 - 0.2) / 0.5 = 0;  (1 - 0.5) / 0.25 = 2.
  EXPECT_TRUE(torch::allclose(out.flatten(), torch::tensor({0.0f, 0.0f, 2.0f}), 1e-6, 1e-6));
}

TEST(NormalizeImagesTest, GreyImagesTakeTheFirstEntryOrABroadcastOne) {
  const torch::Tensor grey = torch::full({2, 1, 2, 2}, 255, torch::kUInt8);
  Normalization rgb;  // three entries: the first serves the grey channel
  rgb.mean = {0.5, 0.0, 0.0};
  rgb.std = {0.25, 1.0, 1.0};
  const torch::Tensor a = NormalizeImages(grey, rgb, torch::kCPU);
  EXPECT_EQ(a.sizes(), grey.sizes());
  EXPECT_TRUE(torch::allclose(a, torch::full({2, 1, 2, 2}, 2.0f)));
  Normalization single;
  single.mean = {0.5};
  single.std = {0.5};
  const torch::Tensor colour = torch::zeros({1, 3, 2, 2}, torch::kUInt8);
  EXPECT_TRUE(torch::allclose(NormalizeImages(colour, single, torch::kCPU),
                              torch::full({1, 3, 2, 2}, -1.0f)));
  Normalization two;
  two.mean = {0.5, 0.5};
  two.std = {0.5, 0.5};
  EXPECT_THROW(NormalizeImages(colour, two, torch::kCPU), c10::Error);
}

// A transform that records its seeds and shifts the images by a seed-derived amount.
BatchTransform SeedShift(std::shared_ptr<std::vector<uint64_t>> seeds) {
  return [seeds](Batch& batch, uint64_t seed) {
    seeds->push_back(seed);
    batch.images.add_(static_cast<double>(seed % 97));
  };
}

TEST(BatchLoaderTest, PrefetchAndInlineGiveIdenticalBatches) {
  const int before = torch::get_num_threads();
  // Larger images, so that with two threads the inline path's ops really run in parallel.
  const TensorDataset data = Indexed(23, 3, 96);
  for (int threads : {1, 2}) {
    torch::set_num_threads(threads);
    auto seeds_a = std::make_shared<std::vector<uint64_t>>();
    auto seeds_b = std::make_shared<std::vector<uint64_t>>();
    BatchLoaderOptions prefetched = Options(5, true);
    prefetched.transform = SeedShift(seeds_a);
    BatchLoaderOptions inline_options = Options(5, false);
    inline_options.transform = SeedShift(seeds_b);
    BatchLoader a(data, prefetched);
    BatchLoader b(data, inline_options);
    for (int64_t epoch : {0, 1}) {
      const Pass pa = RunEpoch(a, epoch), pb = RunEpoch(b, epoch);
      ASSERT_EQ(pa.batches.size(), pb.batches.size());
      for (size_t i = 0; i < pa.batches.size(); ++i) {
        EXPECT_TRUE(torch::equal(pa.batches[i].images, pb.batches[i].images));
        EXPECT_TRUE(torch::equal(pa.batches[i].targets, pb.batches[i].targets));
        EXPECT_TRUE(torch::equal(pa.batches[i].indices, pb.batches[i].indices));
      }
    }
    EXPECT_EQ(*seeds_a, *seeds_b);
    // One seed per (epoch, batch), all different.
    EXPECT_EQ(seeds_a->size(), 10u);
    EXPECT_EQ(std::set<uint64_t>(seeds_a->begin(), seeds_a->end()).size(), 10u);
  }
  torch::set_num_threads(before);
}

TEST(BatchLoaderTest, DestroyingMidEpochDoesNotHang) {
  const TensorDataset data = Indexed(200);
  for (int round = 0; round < 20; ++round) {
    BatchLoaderOptions options = Options(1);
    options.transform = [](Batch&, uint64_t) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    };
    BatchLoader loader(data, options);
    loader.StartEpoch(0);
    for (int i = 0; i < round % 4; ++i) ASSERT_TRUE(loader.Next().has_value());
  }  // each loader stops and joins its worker here
  // Started and never read, or never started at all.
  {
    BatchLoader loader(data, Options(7));
    loader.StartEpoch(0);
  }
  { BatchLoader loader(data, Options(7)); }
}

TEST(BatchLoaderTest, RestartingAPassMidwayStartsCleanly) {
  const TensorDataset data = Indexed(30);
  BatchLoader loader(data, Options(4));
  const std::vector<int64_t> full = RunEpoch(loader, 2).order;
  loader.StartEpoch(5);
  ASSERT_TRUE(loader.Next().has_value());
  ASSERT_TRUE(loader.Next().has_value());
  // Abandon epoch 5 after two batches; epoch 2 again is complete and in the same order.
  EXPECT_EQ(RunEpoch(loader, 2).order, full);
}

TEST(BatchLoaderTest, TransformErrorSurfacesFromNext) {
  for (bool prefetch : {true, false}) {
    const TensorDataset data = Indexed(12);
    auto calls = std::make_shared<std::atomic<int>>(0);
    BatchLoaderOptions options = Options(3, prefetch);
    options.transform = [calls](Batch&, uint64_t) {
      // Fails on the third batch of the first pass only.
      if (calls->fetch_add(1) == 2) throw std::runtime_error("augmentation failed");
    };
    BatchLoader loader(data, options);
    loader.StartEpoch(0);
    EXPECT_TRUE(loader.Next().has_value());
    EXPECT_TRUE(loader.Next().has_value());
    try {
      loader.Next();
      ADD_FAILURE() << "expected the transform's error (prefetch=" << prefetch << ")";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "augmentation failed");
    }
    EXPECT_FALSE(loader.Next().has_value());
    // The next pass runs normally.
    EXPECT_EQ(RunEpoch(loader, 1).order.size(), 12u);
  }
}

TEST(BatchLoaderTest, WaitSecondsCountsBlockedTime) {
  const TensorDataset data = Indexed(6);
  BatchLoaderOptions options = Options(2);
  options.transform = [](Batch&, uint64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  BatchLoader loader(data, options);
  RunEpoch(loader, 0);
  // Three batches at 20 ms each, consumed at once: most of that is waiting.
  EXPECT_GT(loader.wait_seconds(), 0.03);
  EXPECT_LT(loader.wait_seconds(), 5.0);
  loader.StartEpoch(1);
  EXPECT_EQ(loader.wait_seconds(), 0.0);
}

// A stored 8x8 set served at 16x16: images bilinear (what interpolate gives on [0, 1] values,
// then normalised), masks nearest (each source pixel becomes a 2x2 block, so every value stays a
// label or the ignore index), classification targets as stored.
TEST(BatchLoaderTest, ResizeToUpsamplesImagesAndNearestResizesMasks) {
  namespace F = torch::nn::functional;
  torch::manual_seed(12);
  TensorDataset multi;
  multi.task = Task::kMultiClassSegmentation;
  multi.class_names = {"background", "a", "b"};
  multi.ignore_index = 255;
  multi.images = torch::randint(0, 256, {6, 3, 8, 8}, torch::kUInt8);
  multi.targets = torch::randint(0, 3, {6, 8, 8}, torch::kLong);
  multi.targets.slice(1, 0, 2).fill_(255);
  for (bool prefetch : {true, false}) {
    BatchLoaderOptions options = Options(4, prefetch);
    options.resize_to = 16;
    BatchLoader loader(multi, options);
    const Pass pass = RunEpoch(loader, 0);
    ASSERT_EQ(pass.batches.size(), 2u);
    for (const Batch& batch : pass.batches) {
      const int64_t b = batch.indices.size(0);
      ASSERT_EQ(batch.images.sizes(), (std::vector<int64_t>{b, 3, 16, 16}));
      ASSERT_EQ(batch.targets.sizes(), (std::vector<int64_t>{b, 16, 16}));
      EXPECT_EQ(batch.targets.scalar_type(), torch::kLong);
      const torch::Tensor source = multi.targets.index_select(0, batch.indices);
      const torch::Tensor blocks =
          source.repeat_interleave(2, /*dim=*/1).repeat_interleave(2, /*dim=*/2);
      EXPECT_TRUE(torch::equal(batch.targets, blocks));
      const torch::Tensor expected =
          (F::interpolate(multi.images.index_select(0, batch.indices).to(torch::kFloat) / 255.0,
                          F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{16, 16})
                              .mode(torch::kBilinear)
                              .align_corners(false)) -
           0.5) /
          0.25;
      EXPECT_TRUE(torch::allclose(batch.images, expected, 1e-4, 1e-4));
    }
  }

  // Binary masks stay {0, 1}; resize_to equal to the stored size changes nothing.
  TensorDataset binary = multi;
  binary.task = Task::kBinarySegmentation;
  binary.class_names = {"rock"};
  binary.targets = torch::randint(0, 2, {6, 8, 8}, torch::kLong).to(torch::kUInt8);
  BatchLoaderOptions up = Options(6);
  up.resize_to = 16;
  BatchLoader up_loader(binary, up);
  const Batch upsampled = RunEpoch(up_loader, 0).batches.at(0);
  EXPECT_EQ(upsampled.targets.scalar_type(), torch::kFloat);
  EXPECT_TRUE(((upsampled.targets == 0) | (upsampled.targets == 1)).all().item<bool>());
  EXPECT_TRUE(torch::equal(upsampled.targets, binary.targets.index_select(0, upsampled.indices)
                                                  .to(torch::kFloat)
                                                  .repeat_interleave(2, 1)
                                                  .repeat_interleave(2, 2)));
  BatchLoaderOptions same = Options(6);
  same.resize_to = 8;
  BatchLoader same_loader(binary, same);
  BatchLoader plain_loader(binary, Options(6));
  const Batch a = RunEpoch(same_loader, 0).batches.at(0);
  const Batch b = RunEpoch(plain_loader, 0).batches.at(0);
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));

  // Classification: images resized, labels as stored.
  const TensorDataset labels = Indexed(5, 3, 4);
  BatchLoaderOptions classify = Options(5);
  classify.resize_to = 12;
  BatchLoader classify_loader(labels, classify);
  const Batch c = RunEpoch(classify_loader, 0).batches.at(0);
  EXPECT_EQ(c.images.sizes(), (std::vector<int64_t>{5, 3, 12, 12}));
  EXPECT_TRUE(torch::equal(c.targets, c.indices));
}

// The transform sees float images in [0, 1] (0 and 255 stored become exactly 0 and 1), already at
// resize_to, and what it leaves is normalised afterwards.
TEST(BatchLoaderTest, TransformSeesUnitImagesAtModelSizeBeforeNormalisation) {
  TensorDataset data = Indexed(4, 3, 6);
  data.images.select(0, 0).fill_(0);
  data.images.select(0, 3).fill_(255);
  auto seen = std::make_shared<std::vector<torch::Tensor>>();
  BatchLoaderOptions options = Options(4, /*prefetch=*/true);
  options.shuffle = false;
  options.resize_to = 10;
  options.transform = [seen](Batch& batch, uint64_t) {
    seen->push_back(batch.images.clone());
    batch.images.select(0, 1).fill_(0.75);  // (0.75 - 0.5) / 0.25 = 1 once normalised
  };
  BatchLoader loader(data, options);
  const Pass pass = RunEpoch(loader, 0);
  ASSERT_EQ(seen->size(), 1u);
  const torch::Tensor images = seen->front();
  EXPECT_EQ(images.scalar_type(), torch::kFloat);
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{4, 3, 10, 10}));
  EXPECT_EQ(images.min().item<float>(), 0.0f);
  EXPECT_EQ(images.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::allclose(images.select(0, 2), torch::full({3, 10, 10}, 2.0f / 255.0f)));
  const torch::Tensor out = pass.batches.at(0).images;
  EXPECT_TRUE(torch::allclose(out.select(0, 0), torch::full({3, 10, 10}, -2.0f)));
  EXPECT_TRUE(torch::allclose(out.select(0, 1), torch::full({3, 10, 10}, 1.0f)));
  EXPECT_TRUE(torch::allclose(out.select(0, 3), torch::full({3, 10, 10}, 2.0f)));
}

TEST(BatchLoaderTest, EmptyDataSet) {
  TensorDataset empty;
  BatchLoader loader(empty, Options(4));
  EXPECT_EQ(loader.batches_per_epoch(), 0);
  loader.StartEpoch(0);
  EXPECT_FALSE(loader.Next().has_value());
  const TensorDataset three = Indexed(3);
  BatchLoader unstarted(three, Options(4));
  EXPECT_FALSE(unstarted.Next().has_value());
}

}  // namespace
}  // namespace selene::train
