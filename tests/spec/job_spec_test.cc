// Tests server/jobs/job_spec.h: JSON parsing, overrides, defaults, validation, the torch-free
// translation, and that every spec in configs/ validates.
#include "spec/defaults.h"
#include "spec/engine_options.h"
#include "spec/json_io.h"
#include "spec/overrides.h"
#include "spec/resolved_job_spec.h"
#include "spec/validation.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "tests/testing/tiny_job_specs.h"

namespace selene::spec {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using ::selene::testing::MoonSpec;
using ::selene::testing::MustResolve;

// The moon spec the tests edit: "moon", U-Net base 8, 64 samples of 32x32, 2 epochs of batch 8;
// no monitor, so the defaults pick it.
const ::selene::testing::MoonSpecOptions kMoon = [] {
  ::selene::testing::MoonSpecOptions moon;
  moon.name = "moon";
  moon.base_width = 8;
  moon.num_samples = 64;
  moon.batch_size = 8;
  moon.monitor = "";
  return moon;
}();

v1::JobSpec ShapesSpec() {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"json({
    "task": "TASK_CLASSIFICATION",
    "model": {"classifier": {}},
    "data": {"kind": "synthetic_shapes"}
  })json");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

std::string ValidationMessage(const v1::JobSpec& spec) {
  Status status = ValidateJobSpec(spec);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

// Applies an override that must succeed.
void Set(v1::JobSpec& spec, const std::string& assignment) {
  Status status = ApplyOverride(&spec, assignment);
  ASSERT_TRUE(status.ok()) << assignment << ": " << status;
}

// ---------------------------------------------------------------------------------------------
// Parsing.

TEST(ParseJobSpecJsonTest, ReadsProtoNamesCamelCaseAndShortEnums) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"json({
    "name": "n",
    "task": "Binary_Segmentation",
    "model": {"encoderUnet": {"encoderMode": "fine-tune", "decoderBaseWidth": 8,
                              "encoder_checkpoint": "c.pt", "upsample": "UPSAMPLE_BILINEAR"}},
    "data": {"kind": "synthetic_moon", "validationFraction": 0.25, "split_seed": "7"},
    "training": {"optimizer": {"kind": "sgd", "lr": 0.05}, "loss": {"kind": 3}}
  })json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task(), v1::TASK_BINARY_SEGMENTATION);
  EXPECT_EQ(spec->model().encoder_unet().encoder_mode(), v1::ENCODER_MODE_FINE_TUNE);
  EXPECT_EQ(spec->model().encoder_unet().decoder_base_width(), 8);
  EXPECT_EQ(spec->model().encoder_unet().upsample(), v1::UPSAMPLE_BILINEAR);
  EXPECT_DOUBLE_EQ(spec->data().validation_fraction(), 0.25);
  EXPECT_EQ(spec->data().split_seed(), 7u);
  EXPECT_EQ(spec->training().optimizer().kind(), v1::OPTIMIZER_KIND_SGD);
  EXPECT_DOUBLE_EQ(spec->training().optimizer().lr(), 0.05);
  EXPECT_EQ(spec->training().loss().kind(), v1::LOSS_KIND_BCE_DICE);
  EXPECT_TRUE(spec->training().optimizer().has_lr());
  EXPECT_FALSE(spec->training().optimizer().has_weight_decay());
}

TEST(ParseJobSpecJsonTest, MalformedJsonNamesSourceAndParserMessage) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({"name": "x", )", "configs/broken.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("configs/broken.json: invalid JSON: "));
  // One line: selene-train prints it as such.
  EXPECT_THAT(std::string(spec.status().message()), Not(HasSubstr("\n")));
  EXPECT_THAT(std::string(spec.status().message()), Not(HasSubstr("^")));
}

TEST(ParseJobSpecJsonTest, NonObjectIsRefused) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson("[1, 2]", "a.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("a.json: a job spec must be"));
}

TEST(ParseJobSpecJsonTest, UnknownFieldIsNamed) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({"training": {"epochz": 3}})", "spec.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("spec.json: "));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("epochz"));
}

TEST(ParseJobSpecJsonTest, BadEnumNamesFieldAndChoices) {
  StatusOr<v1::JobSpec> spec =
      ParseJobSpecJson(R"({"training": {"optimizer": {"kind": "adamx"}}})", "spec.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(),
            "spec.json: training.optimizer.kind: \"adamx\" is not one of sgd, adam, adamw");
}

TEST(ParseJobSpecJsonTest, PrecisionTakesItsShortNames) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({"training": {"precision": "bf16"}})", "s");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->training().precision(), v1::PRECISION_BF16);
  StatusOr<v1::JobSpec> bad = ParseJobSpecJson(R"({"training": {"precision": "fp16"}})", "s");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "s: training.precision: \"fp16\" is not one of fp32, bf16");
}

TEST(ParseJobSpecJsonTest, WrongTypeIsRefused) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({"training": {"epochs": "many"}})");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("epochs"));
}

TEST(ParseJobSpecJsonTest, HugeIntegerMustBeAString) {
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({"training": {"seed": 18446744073709551615}})");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("training.seed: integers above"));
  StatusOr<v1::JobSpec> quoted =
      ParseJobSpecJson(R"({"training": {"seed": "18446744073709551615"}})");
  ASSERT_TRUE(quoted.ok()) << quoted.status();
  EXPECT_EQ(quoted->training().seed(), 18446744073709551615ull);
}

TEST(LoadJobSpecFileTest, MissingFileIsNotFoundNamingThePath) {
  StatusOr<v1::JobSpec> spec = LoadJobSpecFile("/nonexistent/spec.json");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("/nonexistent/spec.json"));
}

TEST(JobSpecToJsonTest, RoundTripsExactly) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.optimizer.lr=0.02");
  Set(spec, "data.augmentation.hflip=true");
  const std::string json = JobSpecToJson(spec);
  EXPECT_THAT(json, HasSubstr("\"base_width\""));  // proto names
  EXPECT_THAT(json, HasSubstr("TASK_BINARY_SEGMENTATION"));
  EXPECT_THAT(json, Not(HasSubstr("momentum")));  // only what is set
  StatusOr<v1::JobSpec> back = ParseJobSpecJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(spec, *back));
}

// ---------------------------------------------------------------------------------------------
// Overrides.

TEST(ApplyOverrideTest, SetsNestedScalars) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.optimizer.lr=0.01");
  Set(spec, "training.epochs=7");
  Set(spec, "data.split_seed=42");
  Set(spec, "training.optimizer.nesterov=true");
  Set(spec, "name=has = sign");
  EXPECT_DOUBLE_EQ(spec.training().optimizer().lr(), 0.01);
  EXPECT_EQ(spec.training().epochs(), 7);
  EXPECT_EQ(spec.data().split_seed(), 42u);
  EXPECT_TRUE(spec.training().optimizer().nesterov());
  EXPECT_EQ(spec.name(), "has = sign");
}

TEST(ApplyOverrideTest, AcceptsJsonNamesAndCreatesMessages) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.batchSize=4");
  Set(spec, "data.augmentation.cropScaleMin=0.5");
  Set(spec, "training.earlyStopping.enabled=yes");
  EXPECT_EQ(spec.training().batch_size(), 4);
  EXPECT_DOUBLE_EQ(spec.data().augmentation().crop_scale_min(), 0.5);
  EXPECT_TRUE(spec.training().early_stopping().enabled());
}

TEST(ApplyOverrideTest, SetsEnumsByAnySpelling) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.optimizer.kind=SGD");
  EXPECT_EQ(spec.training().optimizer().kind(), v1::OPTIMIZER_KIND_SGD);
  Set(spec, "training.optimizer.kind=optimizer_kind_adam");
  EXPECT_EQ(spec.training().optimizer().kind(), v1::OPTIMIZER_KIND_ADAM);
  Set(spec, "training.schedule.kind=reduce_on_plateau");
  EXPECT_EQ(spec.training().schedule().kind(), v1::SCHEDULE_KIND_REDUCE_ON_PLATEAU);
  Set(spec, "model.unet.upsample=Bilinear");
  EXPECT_EQ(spec.model().unet().upsample(), v1::UPSAMPLE_BILINEAR);
  Set(spec, "task=3");
  EXPECT_EQ(spec.task(), v1::TASK_MULTICLASS_SEGMENTATION);
}

TEST(ApplyOverrideTest, SetsRepeatedFieldsFromCommaLists) {
  v1::JobSpec spec = ShapesSpec();
  Set(spec, "model.classifier.stage_widths=8,16,32");
  EXPECT_EQ(std::vector<int64_t>(spec.model().classifier().stage_widths().begin(),
                                 spec.model().classifier().stage_widths().end()),
            (std::vector<int64_t>{8, 16, 32}));
  Set(spec, "model.classifier.stage_widths=4");  // replaces, not appends
  EXPECT_EQ(spec.model().classifier().stage_widths_size(), 1);
  Set(spec, "data.class_ids=n01443537,n01629819");
  ASSERT_EQ(spec.data().class_ids_size(), 2);
  EXPECT_EQ(spec.data().class_ids(1), "n01629819");
  Set(spec, "training.loss.class_weights=1, 2.5");
  EXPECT_DOUBLE_EQ(spec.training().loss().class_weights(1), 2.5);
  Set(spec, "data.class_ids=");  // empty clears
  EXPECT_EQ(spec.data().class_ids_size(), 0);
}

TEST(ApplyOverrideTest, UnknownPathNamesComponentAndValidFields) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Status status = ApplyOverride(&spec, "training.optimizer.lrr=0.1");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "training.optimizer.lrr: unknown field \"lrr\" in training.optimizer; valid fields: "
            "kind, lr, weight_decay, momentum, nesterov, beta1, beta2");
  status = ApplyOverride(&spec, "trainig.epochs=3");
  EXPECT_EQ(status.message(),
            "trainig: unknown field \"trainig\"; valid fields: name, description, task, model, "
            "data, training");
}

TEST(ApplyOverrideTest, BadValueNamesFieldAndExpectedType) {
  v1::JobSpec spec = MoonSpec(kMoon);
  EXPECT_EQ(ApplyOverride(&spec, "training.epochs=ten").message(),
            "training.epochs: \"ten\" is not an integer (int64)");
  EXPECT_EQ(ApplyOverride(&spec, "training.optimizer.lr=fast").message(),
            "training.optimizer.lr: \"fast\" is not a finite number");
  EXPECT_EQ(ApplyOverride(&spec, "training.optimizer.kind=adamx").message(),
            "training.optimizer.kind: \"adamx\" is not one of sgd, adam, adamw");
  EXPECT_EQ(ApplyOverride(&spec, "data.split_seed=-1").message(),
            "data.split_seed: \"-1\" is not a non-negative integer (uint64)");
  v1::JobSpec shapes = ShapesSpec();
  EXPECT_EQ(ApplyOverride(&shapes, "model.classifier.stage_widths=8,x").message(),
            "model.classifier.stage_widths: \"x\" is not an integer (int64)");
  EXPECT_EQ(ApplyOverride(&spec, "data.augmentation.hflip=maybe").message(),
            "data.augmentation.hflip: \"maybe\" is not a bool (true or false)");
  // The spec is unchanged by a failed scalar override.
  EXPECT_EQ(spec.training().epochs(), 2);
}

TEST(ApplyOverrideTest, StructuralMistakesAreExplained) {
  v1::JobSpec spec = MoonSpec(kMoon);
  EXPECT_THAT(std::string(ApplyOverride(&spec, "training.epochs").message()),
              HasSubstr("expected field.path=value"));
  EXPECT_THAT(std::string(ApplyOverride(&spec, "training.optimizer=sgd").message()),
              HasSubstr("training.optimizer: is a message; set one of its fields (kind, lr"));
  EXPECT_THAT(std::string(ApplyOverride(&spec, "training.epochs.max=3").message()),
              HasSubstr("training.epochs: is an integer (int64), not a message"));
  EXPECT_EQ(ApplyOverride(&spec, "model.classifier.stem_width=8").message(),
            "model.classifier: the spec uses model.unet (family holds one of them)");
  EXPECT_TRUE(spec.model().has_unet());
}

TEST(ApplyOverridesTest, StopsAtFirstError) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Status status = ApplyOverrides(&spec, {"training.epochs=5", "bogus=1", "training.epochs=6"});
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(spec.training().epochs(), 5);
}

// ---------------------------------------------------------------------------------------------
// Defaults.

TEST(ResolveDefaultsTest, FillsSensibleDefaults) {
  const v1::JobSpec resolved = ResolveDefaults(ShapesSpec());
  const v1::TrainingSpec& t = resolved.training();
  EXPECT_EQ(t.optimizer().kind(), v1::OPTIMIZER_KIND_ADAMW);
  EXPECT_DOUBLE_EQ(t.optimizer().lr(), 1e-3);
  EXPECT_DOUBLE_EQ(t.optimizer().weight_decay(), 0.01);
  EXPECT_FALSE(t.optimizer().has_momentum());  // SGD only
  EXPECT_EQ(t.loss().kind(), v1::LOSS_KIND_CROSS_ENTROPY);
  EXPECT_EQ(t.monitor(), "top1");
  EXPECT_EQ(t.epochs(), 10);
  EXPECT_EQ(t.batch_size(), 32);
  EXPECT_EQ(t.device(), "cpu");
  EXPECT_EQ(t.precision(), v1::PRECISION_FP32);
  EXPECT_TRUE(t.has_channels_last());
  EXPECT_TRUE(t.channels_last());
  EXPECT_EQ(t.seed(), 1u);
  EXPECT_EQ(t.schedule().kind(), v1::SCHEDULE_KIND_CONSTANT);
  EXPECT_EQ(resolved.data().num_classes(), 6);
  EXPECT_EQ(resolved.data().num_samples(), 1000);
  EXPECT_EQ(resolved.data().image_size(), 64);
  EXPECT_DOUBLE_EQ(resolved.data().validation_fraction(), 0.2);
  EXPECT_EQ(resolved.model().classifier().num_classes(), 6);
  EXPECT_EQ(resolved.model().classifier().stage_widths_size(), 4);
}

TEST(ResolveDefaultsTest, DependsOnTaskAndKinds) {
  v1::JobSpec binary = ResolveDefaults(MoonSpec(kMoon));
  EXPECT_EQ(binary.training().monitor(), "dice");
  EXPECT_EQ(binary.training().loss().kind(), v1::LOSS_KIND_BCE_DICE);
  EXPECT_DOUBLE_EQ(binary.training().loss().pos_weight(), 1.0);
  EXPECT_EQ(binary.model().unet().out_channels(), 1);

  v1::JobSpec multi = MoonSpec(kMoon);
  Set(multi, "task=multiclass_segmentation");
  Set(multi, "data.kind=synthetic_shapes_segmentation");
  Set(multi, "data.num_classes=4");
  multi = ResolveDefaults(multi);
  EXPECT_EQ(multi.training().monitor(), "mean_dice");
  EXPECT_EQ(multi.model().unet().out_channels(), 5);  // 4 shapes + background
  EXPECT_EQ(multi.training().loss().ignore_index(), -100);

  v1::JobSpec sgd = ShapesSpec();
  Set(sgd, "training.optimizer.kind=sgd");
  sgd = ResolveDefaults(sgd);
  EXPECT_DOUBLE_EQ(sgd.training().optimizer().lr(), 0.1);
  EXPECT_DOUBLE_EQ(sgd.training().optimizer().momentum(), 0.9);
  EXPECT_FALSE(sgd.training().optimizer().has_beta1());

  v1::JobSpec explicit_lr = ShapesSpec();
  Set(explicit_lr, "training.optimizer.lr=0.5");
  EXPECT_DOUBLE_EQ(ResolveDefaults(explicit_lr).training().optimizer().lr(), 0.5);
}

TEST(ResolveDefaultsTest, IsIdempotent) {
  const v1::JobSpec once = ResolveDefaults(MoonSpec(kMoon));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(once, ResolveDefaults(once)));
}

// ---------------------------------------------------------------------------------------------
// Validation.

TEST(ValidateJobSpecTest, AcceptsMinimalSpecs) {
  EXPECT_TRUE(ValidateJobSpec(MoonSpec(kMoon)).ok()) << ValidateJobSpec(MoonSpec(kMoon));
  EXPECT_TRUE(ValidateJobSpec(ShapesSpec()).ok()) << ValidateJobSpec(ShapesSpec());
}

TEST(ValidateJobSpecTest, EmptySpecListsWhatIsMissing) {
  const std::string message = ValidationMessage(v1::JobSpec());
  EXPECT_THAT(message, HasSubstr("task: not set (classification, binary_segmentation, "
                                 "multiclass_segmentation)"));
  EXPECT_THAT(message, HasSubstr("model: no family set (classifier, unet or encoder_unet)"));
  EXPECT_THAT(message, HasSubstr("data.kind: not set"));
}

TEST(ValidateJobSpecTest, RangeErrorsNameFieldPathAndBound) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.batch_size=0");
  Set(spec, "data.validation_fraction=1.5");
  Set(spec, "training.epochs=0");
  Set(spec, "training.optimizer.lr=-1");
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("training.batch_size: 0 must be >= 1"));
  EXPECT_THAT(message, HasSubstr("data.validation_fraction: 1.5 must be in (0, 1)"));
  EXPECT_THAT(message, HasSubstr("training.epochs: 0 must be >= 1"));
  EXPECT_THAT(message, HasSubstr("training.optimizer.lr: -1 must be > 0"));
}

TEST(ValidateJobSpecTest, TaskModelAndLossMismatches) {
  v1::JobSpec classifier_on_segmentation = MoonSpec(kMoon);
  classifier_on_segmentation.mutable_model()->mutable_classifier();
  EXPECT_THAT(ValidationMessage(classifier_on_segmentation),
              HasSubstr("model.classifier: a classifier needs task classification, not "
                        "binary_segmentation"));

  v1::JobSpec unet_on_classification = ShapesSpec();
  unet_on_classification.mutable_model()->mutable_unet();
  EXPECT_THAT(ValidationMessage(unet_on_classification),
              HasSubstr("model.unet: a U-Net needs a segmentation task, not classification"));

  v1::JobSpec bce_on_multiclass = MoonSpec(kMoon);
  Set(bce_on_multiclass, "task=multiclass_segmentation");
  Set(bce_on_multiclass, "data.kind=synthetic_shapes_segmentation");
  Set(bce_on_multiclass, "training.loss.kind=bce");
  EXPECT_THAT(ValidationMessage(bce_on_multiclass),
              HasSubstr("training.loss.kind: bce needs binary_segmentation, not task "
                        "multiclass_segmentation"));

  v1::JobSpec wrong_data = ShapesSpec();
  Set(wrong_data, "data.kind=synthetic_moon");
  EXPECT_THAT(ValidationMessage(wrong_data),
              HasSubstr("data.kind: synthetic_moon data does not fit task classification"));
}

TEST(ValidateJobSpecTest, UNetImageSizeMustBeDivisibleBy16) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "data.image_size=40");
  EXPECT_THAT(ValidationMessage(spec),
              HasSubstr("data.image_size: 40 must be divisible by 16 for a U-Net"));
}

TEST(ValidateJobSpecTest, EncoderUNetRules) {
  v1::JobSpec spec = MoonSpec(kMoon);
  spec.mutable_model()->mutable_encoder_unet()->set_encoder_mode(v1::ENCODER_MODE_FROZEN);
  Set(spec, "model.encoder_unet.unfreeze_epoch=1");
  Set(spec, "data.image_size=24");
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("model.encoder_unet.encoder_checkpoint: required for "
                                 "encoder_mode frozen (or encoder_job_id)"));
  EXPECT_THAT(message,
              HasSubstr("model.encoder_unet.unfreeze_epoch: only for encoder_mode fine_tune"));
  EXPECT_THAT(message, HasSubstr("data.image_size: 24 must be divisible by 16 (the encoder's "
                                 "total stride)"));

  v1::JobSpec both = MoonSpec(kMoon);
  both.mutable_model()->mutable_encoder_unet()->set_encoder_mode(v1::ENCODER_MODE_FINE_TUNE);
  Set(both, "model.encoder_unet.encoder_checkpoint=a.pt");
  Set(both, "model.encoder_unet.encoder_job_id=job-1");
  Set(both, "model.encoder_unet.unfreeze_epoch=2");  // epochs is 2
  const std::string both_message = ValidationMessage(both);
  EXPECT_THAT(both_message, HasSubstr("model.encoder_unet.encoder_job_id: set "
                                      "encoder_checkpoint or encoder_job_id, not both"));
  EXPECT_THAT(both_message, HasSubstr("model.encoder_unet.unfreeze_epoch: 2 must be in [0, "
                                      "training.epochs 2)"));
}

TEST(ValidateJobSpecTest, FieldsForAnotherChoiceAreRefused) {
  v1::JobSpec spec = ShapesSpec();
  Set(spec, "training.optimizer.momentum=0.9");
  Set(spec, "training.schedule.step_size=3");
  Set(spec, "training.loss.pos_weight=2");
  Set(spec, "training.early_stopping.patience=3");
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("training.optimizer.momentum: only for sgd"));
  EXPECT_THAT(message, HasSubstr("training.schedule.step_size: only for kind step"));
  EXPECT_THAT(message, HasSubstr("training.loss.pos_weight: only for bce and bce_dice"));
  EXPECT_THAT(message, HasSubstr("training.early_stopping.patience: set "
                                 "training.early_stopping.enabled to use it"));
}

TEST(ValidateJobSpecTest, ClassCountsMustAgree) {
  v1::JobSpec spec = ShapesSpec();
  Set(spec, "model.classifier.num_classes=10");
  Set(spec, "training.loss.class_weights=1,1,1");
  Set(spec, "data.num_classes=13");
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("data.num_classes: 13 must be in [2, 12]"));
  EXPECT_THAT(message,
              HasSubstr("model.classifier.num_classes: 10 does not match the data's 13 classes"));
  EXPECT_THAT(message, HasSubstr("training.loss.class_weights: 3 weights for 13 classes"));

  v1::JobSpec binary = MoonSpec(kMoon);
  Set(binary, "model.unet.out_channels=2");
  EXPECT_THAT(ValidationMessage(binary),
              HasSubstr("model.unet.out_channels: 2 must be 1 for binary_segmentation"));
}

TEST(ValidateJobSpecTest, ClassifierHasFourStages) {
  v1::JobSpec spec = ShapesSpec();
  Set(spec, "model.classifier.stage_widths=16,32,64");
  Set(spec, "model.classifier.stage_strides=1,2,3,2");
  Set(spec, "model.classifier.stem_stride=4");
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("model.classifier.stage_widths: 3 entries, must have 4 (one "
                                 "per stage)"));
  EXPECT_THAT(message, HasSubstr("model.classifier.stage_strides[2]: 3 must be 1 or 2"));
  EXPECT_THAT(message, HasSubstr("model.classifier.stem_stride: 4 must be 1 or 2"));
}

TEST(ValidateJobSpecTest, DataPathRules) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "data.path=moon");
  EXPECT_THAT(ValidationMessage(spec), HasSubstr("data.path: synthetic data takes no path"));
  Set(spec, "data.kind=moon");
  Set(spec, "data.path=../secrets");
  Set(spec, "data.num_samples=10");
  std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("data.path: \"../secrets\" must stay inside the data root"));
  EXPECT_THAT(message, HasSubstr("data.num_samples: only for synthetic data, not moon"));
  Set(spec, "data.path=");
  EXPECT_THAT(ValidationMessage(spec), HasSubstr("data.path: required for moon"));
}

TEST(ValidateJobSpecTest, MonitorDeviceAndAugmentation) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.monitor=top1");
  Set(spec, "training.device=gpu");
  Set(spec, "data.augmentation.crop_scale_min=0.5");
  Set(spec, "data.augmentation.rotation_degrees=270");
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("training.monitor: \"top1\" is not a metric of "
                                 "binary_segmentation"));
  EXPECT_THAT(message, HasSubstr("training.device: \"gpu\" must be auto, cpu, cuda or cuda:N"));
  EXPECT_THAT(message, HasSubstr("data.augmentation.crop_scale_max: set crop_scale_min and "
                                 "crop_scale_max together"));
  EXPECT_THAT(message, HasSubstr("data.augmentation.rotation_degrees: 270 must be in [0, 180]"));

  v1::JobSpec ok = MoonSpec(kMoon);
  Set(ok, "training.device=cuda:1");
  Set(ok, "training.monitor=val_loss");
  EXPECT_TRUE(ValidateJobSpec(ok).ok()) << ValidateJobSpec(ok);
}

TEST(ValidateJobSpecTest, UndefinedEnumNumbersAreRefused) {
  StatusOr<v1::JobSpec> spec =
      ParseJobSpecJson(R"({"task": 7, "training": {"loss": {"kind": 42}}, "model": {"unet": {}}})");
  ASSERT_TRUE(spec.ok()) << spec.status();  // proto3 enums are open
  const std::string message = ValidationMessage(*spec);
  EXPECT_THAT(message, HasSubstr("task: 7 is not one of classification"));
  EXPECT_THAT(message, HasSubstr("training.loss.kind: 42 is not one of bce, dice"));
}

TEST(ValidateJobSpecTest, NanNeverPasses) {
  v1::JobSpec spec = MoonSpec(kMoon);
  spec.mutable_data()->set_validation_fraction(std::nan(""));
  EXPECT_THAT(ValidationMessage(spec),
              HasSubstr("data.validation_fraction: nan is not a finite number"));
}

TEST(ValidateJobSpecTest, NonFiniteNumbersAreRefusedInEveryFieldByPath) {
  v1::JobSpec spec = MoonSpec(kMoon);
  const double inf = std::numeric_limits<double>::infinity();
  spec.mutable_training()->mutable_optimizer()->set_lr(inf);  // nested; "> 0" would pass
  spec.mutable_training()->set_grad_clip_norm(-inf);
  spec.mutable_data()->mutable_augmentation()->set_brightness(std::nan(""));
  spec.mutable_data()->add_normalize_mean(0.5);  // repeated: the bad element is named
  spec.mutable_data()->add_normalize_mean(inf);
  spec.mutable_data()->add_normalize_mean(0.5);
  spec.mutable_model()->mutable_unet()->set_dropout(-inf);
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("training.optimizer.lr: inf is not a finite number"));
  EXPECT_THAT(message, HasSubstr("training.grad_clip_norm: -inf is not a finite number"));
  EXPECT_THAT(message, HasSubstr("data.augmentation.brightness: nan is not a finite number"));
  EXPECT_THAT(message, HasSubstr("data.normalize_mean[1]: inf is not a finite number"));
  EXPECT_THAT(message, HasSubstr("model.unet.dropout: -inf is not a finite number"));
  EXPECT_THAT(message, Not(HasSubstr("normalize_mean[0]")));
  EXPECT_THAT(message, Not(HasSubstr("must be")));  // reported alone, not also as range errors
}

TEST(ValidateJobSpecTest, NonFiniteNumbersFromJsonAreRefused) {
  // Protobuf's JSON mapping reads "Infinity" and "NaN" for doubles, also in repeated fields.
  StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"json({
    "task": "multiclass_segmentation",
    "model": {"unet": {}},
    "data": {"kind": "synthetic_shapes_segmentation"},
    "training": {"loss": {"kind": "cross_entropy", "class_weights": [1, 1, "NaN", 1, 1, 1, 1]},
                 "schedule": {"kind": "step", "gamma": "-Infinity"}}
  })json");
  ASSERT_TRUE(spec.ok()) << spec.status();
  const std::string message = ValidationMessage(*spec);
  EXPECT_THAT(message, HasSubstr("training.loss.class_weights[2]: nan is not a finite number"));
  EXPECT_THAT(message, HasSubstr("training.schedule.gamma: -inf is not a finite number"));
}

TEST(ValidateJobSpecTest, UpperBoundsNameFieldAndBound) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.epochs=1000000000000");
  Set(spec, "training.batch_size=65537");
  Set(spec, "data.num_samples=1000001");
  Set(spec, "data.image_size=4112");
  Set(spec, "model.unet.base_width=1048577");
  Set(spec, "model.unet.in_channels=65");
  std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("training.epochs: 1000000000000 must be <= 100000"));
  EXPECT_THAT(message, HasSubstr("training.batch_size: 65537 must be <= 65536"));
  EXPECT_THAT(message, HasSubstr("data.num_samples: 1000001 must be <= 1000000"));
  EXPECT_THAT(message, HasSubstr("data.image_size: 4112 must be <= 4096"));
  EXPECT_THAT(message, HasSubstr("model.unet.base_width: 1048577 must be <= 1048576"));
  EXPECT_THAT(message, HasSubstr("model.unet.in_channels: 65 must be <= 64"));

  v1::JobSpec capped = MoonSpec(kMoon);
  Set(capped, "model.unet.max_width=9223372036854775807");
  EXPECT_THAT(ValidationMessage(capped),
              HasSubstr("model.unet.max_width: 9223372036854775807 must be <= 1048576"));

  v1::JobSpec classifier = ShapesSpec();
  Set(classifier, "model.classifier.stem_width=2000000");
  Set(classifier, "model.classifier.stage_widths=8,8,8,4611686018427387904");
  Set(classifier, "model.classifier.stage_blocks=1,1,1,1025");
  message = ValidationMessage(classifier);
  EXPECT_THAT(message, HasSubstr("model.classifier.stem_width: 2000000 must be <= 1048576"));
  EXPECT_THAT(message, HasSubstr("model.classifier.stage_widths[3]: 4611686018427387904 must be "
                                 "<= 1048576"));
  EXPECT_THAT(message, HasSubstr("model.classifier.stage_blocks[3]: 1025 must be <= 1024"));

  v1::JobSpec encoder = MoonSpec(kMoon);
  encoder.mutable_model()->mutable_encoder_unet()->set_decoder_base_width(int64_t{1} << 40);
  EXPECT_THAT(ValidationMessage(encoder),
              HasSubstr("model.encoder_unet.decoder_base_width: 1099511627776 must be <= 1048576"));

  v1::JobSpec folder = MoonSpec(kMoon);
  Set(folder, "task=multiclass_segmentation");
  Set(folder, "data.kind=segmentation_folder");
  Set(folder, "data.path=camvid");
  folder.mutable_data()->clear_num_samples();  // synthetic only
  Set(folder, "data.num_classes=65537");
  EXPECT_THAT(ValidationMessage(folder), HasSubstr("data.num_classes: 65537 must be <= 65536"));
}

TEST(ValidateJobSpecTest, BoundsThemselvesAreAccepted) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.epochs=100000");
  Set(spec, "training.batch_size=65536");
  Set(spec, "data.num_samples=1000000");
  Set(spec, "data.image_size=4096");
  Set(spec, "model.unet.base_width=1048576");
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

TEST(ValidateJobSpecTest, HugeStridesAreReportedWithoutOverflow) {
  // Their product would wrap to 0 and the divisibility check would divide by it.
  v1::JobSpec spec = MoonSpec(kMoon);
  v1::ClassifierSpec* encoder = spec.mutable_model()->mutable_encoder_unet()->mutable_encoder();
  encoder->set_stem_stride(int64_t{1} << 32);
  for (int i = 0; i < 4; ++i) encoder->add_stage_strides(int64_t{1} << 32);
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("model.encoder_unet.encoder.stem_stride: 4294967296 must be 1 "
                                 "or 2"));
  EXPECT_THAT(message, HasSubstr("model.encoder_unet.encoder.stage_strides[0]: 4294967296 must "
                                 "be 1 or 2"));
}

TEST(ValidateJobSpecTest, ManyProblemsAreCountedNotAllListed) {
  v1::JobSpec spec = MoonSpec(kMoon);
  for (int i = 0; i < 100000; ++i) spec.mutable_data()->add_class_ids("same");
  const std::string message = ValidationMessage(spec);
  EXPECT_THAT(message, HasSubstr("data.class_ids: 100000 names, at most 65536"));
  EXPECT_THAT(message, HasSubstr("data.class_ids: \"same\" appears twice"));
  EXPECT_THAT(message, HasSubstr(" more"));
  EXPECT_LT(message.size(), 5000u);
}

TEST(ValidateJobSpecTest, AutoDeviceIsAcceptedAndRunsLocallyOnTheCpu) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "training.device=auto");
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_EQ(ResolveDefaults(spec).training().device(), "cpu");
}

TEST(ValidateJobSpecTest, EchoedTextIsCut) {
  v1::JobSpec spec = MoonSpec(kMoon);
  spec.mutable_training()->set_monitor(std::string(100000, 'm'));
  spec.mutable_training()->set_device(std::string(100000, 'd'));
  spec.mutable_data()->set_path("/" + std::string(100000, 'p'));
  const std::string message = ValidationMessage(spec);
  EXPECT_LT(message.size(), 2000u);
  EXPECT_THAT(message, HasSubstr("... (100000 bytes)"));
  EXPECT_THAT(message, HasSubstr("training.device: \"ddd"));
}

// ---------------------------------------------------------------------------------------------
// Translation (torch-free half).

TEST(ResolvedJobSpecTest, NetworkMapsFamilyOptions) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "model.unet.upsample=bilinear");
  Set(spec, "model.unet.downsample=strided_conv");
  Set(spec, "model.parameter_budget=500000");
  const models::NetworkSpec network = MustResolve(spec).network();
  EXPECT_EQ(network.family, models::Family::kUNet);
  EXPECT_EQ(network.unet.base_width, 8);
  EXPECT_EQ(network.unet.out_channels, 1);
  EXPECT_EQ(network.unet.upsample, models::Upsample::kBilinear);
  EXPECT_EQ(network.unet.downsample, models::Downsample::kStridedConv);
  EXPECT_EQ(network.parameter_budget, 500000);

  v1::JobSpec encoder = MoonSpec(kMoon);
  auto* e = encoder.mutable_model()->mutable_encoder_unet();
  e->set_encoder_mode(v1::ENCODER_MODE_FINE_TUNE);
  e->set_encoder_checkpoint("runs/classifier/best.pt");
  e->mutable_encoder()->set_stem_width(16);
  const models::NetworkSpec encoder_network = MustResolve(encoder).network();
  EXPECT_EQ(encoder_network.family, models::Family::kEncoderUNet);
  EXPECT_EQ(encoder_network.encoder_unet.encoder_mode, models::EncoderMode::kFineTune);
  EXPECT_EQ(encoder_network.encoder_unet.encoder.stem_width, 16);
  EXPECT_FALSE(encoder_network.encoder_unet.encoder.head);
  EXPECT_DOUBLE_EQ(encoder_network.encoder_unet.encoder_lr_scale, 0.1);
  EXPECT_EQ(encoder_network.encoder_unet.upsample, models::Upsample::kBilinear);
  EXPECT_EQ(encoder_network.encoder_unet.encoder_checkpoint, "runs/classifier/best.pt");

  const models::NetworkSpec classifier = MustResolve(ShapesSpec()).network();
  EXPECT_EQ(classifier.family, models::Family::kClassifier);
  EXPECT_EQ(classifier.classifier.num_classes, 6);
  EXPECT_TRUE(classifier.classifier.head);
}

TEST(ResolvedJobSpecTest, DataMapsDataAndDefaults) {
  v1::JobSpec spec = MoonSpec(kMoon);
  Set(spec, "data.augmentation.hflip=true");
  const DataRequest request = MustResolve(spec).data();
  EXPECT_EQ(request.kind, DataKind::kSyntheticMoon);
  EXPECT_EQ(request.task, train::Task::kBinarySegmentation);
  EXPECT_EQ(request.num_samples, 64);
  EXPECT_EQ(request.image_size, 32);
  EXPECT_DOUBLE_EQ(request.validation_fraction, 0.2);
  EXPECT_EQ(request.split_seed, 1u);
  EXPECT_TRUE(request.synthetic());
  EXPECT_TRUE(request.augmentation.any());

  v1::JobSpec tiny = ShapesSpec();
  Set(tiny, "data.kind=tiny_imagenet");
  Set(tiny, "data.path=tiny-imagenet-200");
  Set(tiny, "data.class_ids=n01443537,n01629819");
  Set(tiny, "model.classifier.num_classes=2");
  ASSERT_TRUE(ValidateJobSpec(tiny).ok()) << ValidateJobSpec(tiny);
  const DataRequest files = MustResolve(tiny).data();
  EXPECT_EQ(files.kind, DataKind::kTinyImageNet);
  EXPECT_FALSE(files.validation_fraction_set);  // its own val/ split
  EXPECT_EQ(files.class_ids.size(), 2u);
  EXPECT_FALSE(files.augmentation.any());
}

// ---------------------------------------------------------------------------------------------
// The ready specs.

TEST(ConfigsTest, EveryConfigParsesAndValidates) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(SELENE_CONFIGS_DIR)) {
    if (entry.path().extension() != ".json") continue;
    ++count;
    SCOPED_TRACE(entry.path().string());
    StatusOr<v1::JobSpec> spec = LoadJobSpecFile(entry.path().string());
    ASSERT_TRUE(spec.ok()) << spec.status();
    Status valid = ValidateJobSpec(*spec);
    EXPECT_TRUE(valid.ok()) << valid;
    EXPECT_FALSE(spec->name().empty());
    EXPECT_FALSE(spec->description().empty());
  }
  EXPECT_GE(count, 8);
}

}  // namespace
}  // namespace selene::spec
