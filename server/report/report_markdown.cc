#include "server/report/report_markdown.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/durable_file.h"
#include "common/markdown_table.h"
#include "common/number_format.h"
#include "server/report/main_metrics.h"
#include "server/report/run_summary.h"

namespace selene::report {
namespace {

using Align = MarkdownTable::Align;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kMaxPerClassRows = 30;
constexpr size_t kMaxHistoryRows = 100;

// "OPTIMIZER_KIND_ADAMW" -> "adamw"; unspecified -> "".
std::string EnumWord(const std::string& name, const std::string& prefix) {
  std::string word = absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
  if (word == "UNSPECIFIED") return "";
  for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return word;
}

// Shortest round-trip-ish spelling for settings: 0.001, 1e-05, 0.5, 10.
std::string Num(double value) { return absl::StrFormat("%g", value); }

std::string Plural(int64_t n, const std::string& word) {
  return absl::StrCat(n, " ", word, n == 1 ? "" : "s");
}

const train::EpochRecord* FindEpoch(const std::vector<train::EpochRecord>& history, int64_t epoch) {
  for (const train::EpochRecord& r : history) {
    if (r.epoch == epoch) return &r;
  }
  return nullptr;
}

double Value(const train::EpochRecord& r, const std::string& name) {
  if (name == "val_loss" || name == "loss") return r.val_loss;
  if (name == "train_loss") return r.train_loss;
  auto it = r.val_metrics.find(name);
  return it == r.val_metrics.end() ? kNaN : it->second;
}

std::string ModelDescription(const v1::ModelSpec& model) {
  switch (model.family_case()) {
    case v1::ModelSpec::kClassifier:
      return "classifier";
    case v1::ModelSpec::kUnet:
      return "U-Net";
    case v1::ModelSpec::kEncoderUnet: {
      const std::string mode = v1::EncoderMode_Name(model.encoder_unet().encoder_mode());
      std::string word = EnumWord(mode, "ENCODER_MODE_");
      if (word.empty()) word = "scratch";
      if (word == "fine_tune") word = "fine-tuned";
      if (word == "scratch") word = "trained from scratch";
      return "encoder U-Net (encoder " + word + ")";
    }
    case v1::ModelSpec::FAMILY_NOT_SET:
      break;
  }
  return "model";
}

std::string Widths(const google::protobuf::RepeatedField<int64_t>& values) {
  return values.empty() ? "default" : absl::StrJoin(values, "/");
}

std::string ClassifierSettings(const v1::ClassifierSpec& c) {
  std::string text =
      absl::StrCat("stem ", c.stem_width(), " (stride ", c.stem_stride(), "), stage widths ",
                   Widths(c.stage_widths()), ", blocks ", Widths(c.stage_blocks()), ", strides ",
                   Widths(c.stage_strides()));
  const std::string block = EnumWord(v1::BlockType_Name(c.block()), "BLOCK_TYPE_");
  if (!block.empty()) absl::StrAppend(&text, ", ", block, " blocks");
  if (c.dropout() > 0) absl::StrAppend(&text, ", dropout ", Num(c.dropout()));
  return text;
}

// Rows of the hyperparameter table that describe the model's shape, by family.
std::vector<std::pair<std::string, std::string>> ModelSettings(const v1::ModelSpec& model) {
  switch (model.family_case()) {
    case v1::ModelSpec::kClassifier:
      return {{"classifier", ClassifierSettings(model.classifier())}};
    case v1::ModelSpec::kUnet: {
      const v1::UNetSpec& u = model.unet();
      std::string text = absl::StrCat("base width ", u.base_width());
      if (u.max_width() > 0) absl::StrAppend(&text, ", max width ", u.max_width());
      const std::string down = EnumWord(v1::Downsample_Name(u.downsample()), "DOWNSAMPLE_");
      const std::string up = EnumWord(v1::Upsample_Name(u.upsample()), "UPSAMPLE_");
      if (!down.empty()) absl::StrAppend(&text, ", down: ", down);
      if (!up.empty()) absl::StrAppend(&text, ", up: ", up);
      if (u.dropout() > 0) absl::StrAppend(&text, ", dropout ", Num(u.dropout()));
      return {{"U-Net", text}};
    }
    case v1::ModelSpec::kEncoderUnet: {
      const v1::EncoderUNetSpec& e = model.encoder_unet();
      std::string decoder = absl::StrCat("base width ", e.decoder_base_width());
      const std::string up = EnumWord(v1::Upsample_Name(e.upsample()), "UPSAMPLE_");
      if (!up.empty()) absl::StrAppend(&decoder, ", up: ", up);
      std::string training;
      switch (e.encoder_mode()) {
        case v1::ENCODER_MODE_FROZEN:
          training = "frozen";
          break;
        case v1::ENCODER_MODE_FINE_TUNE:
          training = absl::StrCat("frozen, then trained from epoch ", e.unfreeze_epoch() + 1,
                                  " at lr x ", Num(e.encoder_lr_scale()));
          break;
        default:
          training = "trained from scratch with the decoder";
      }
      if (!e.encoder_checkpoint().empty()) {
        absl::StrAppend(&training, "; weights from `", e.encoder_checkpoint(), "`");
      }
      return {{"decoder", decoder},
              {"encoder", ClassifierSettings(e.encoder())},
              {"encoder training", training}};
    }
    case v1::ModelSpec::FAMILY_NOT_SET:
      break;
  }
  return {};
}

std::string OptimizerSettings(const v1::OptimizerSpec& o) {
  const std::string kind = EnumWord(v1::OptimizerKind_Name(o.kind()), "OPTIMIZER_KIND_");
  const std::map<std::string, std::string> names = {
      {"sgd", "SGD"}, {"adam", "Adam"}, {"adamw", "AdamW"}, {"", "AdamW"}};
  std::string text = absl::StrCat(names.count(kind) ? names.at(kind) : kind, ", lr ", Num(o.lr()),
                                  ", weight decay ", Num(o.weight_decay()));
  if (kind == "sgd") {
    absl::StrAppend(&text, ", momentum ", Num(o.momentum()), o.nesterov() ? " (Nesterov)" : "");
  } else if (o.has_beta1() || o.has_beta2()) {
    absl::StrAppend(&text, ", betas ", Num(o.beta1()), "/", Num(o.beta2()));
  }
  return text;
}

std::string ScheduleSettings(const v1::ScheduleSpec& s) {
  std::string kind = EnumWord(v1::ScheduleKind_Name(s.kind()), "SCHEDULE_KIND_");
  std::string text;
  if (kind.empty() || kind == "constant") {
    text = "constant";
  } else if (kind == "step") {
    text = absl::StrCat("step: lr x ", Num(s.gamma()), " every ", Plural(s.step_size(), "epoch"));
  } else if (kind == "cosine") {
    text = absl::StrCat("cosine (final factor ", Num(s.min_factor()), ")");
  } else if (kind == "reduce_on_plateau") {
    text =
        absl::StrCat("reduce on plateau: x", Num(s.gamma()), " after ",
                     Plural(s.plateau_patience(), "flat epoch"), ", floor x", Num(s.min_factor()));
  } else {
    text = kind;
  }
  if (s.warmup_epochs() > 0) {
    absl::StrAppend(&text, "; linear warm-up over ", Plural(s.warmup_epochs(), "epoch"),
                    " from lr x ", Num(s.warmup_start_factor()));
  }
  return text;
}

std::string LossSettings(const v1::LossSpec& l) {
  const std::string kind = EnumWord(v1::LossKind_Name(l.kind()), "LOSS_KIND_");
  std::vector<std::string> parts;
  std::string name = kind.empty() ? "default" : kind;
  if (kind == "bce") name = "BCE";
  if (kind == "dice") name = "Dice";
  if (kind == "bce_dice") name = "BCE + Dice";
  if (kind == "cross_entropy") name = "cross-entropy";
  if (kind == "cross_entropy_dice") name = "cross-entropy + Dice";
  if (kind == "bce_dice") {
    parts.push_back("BCE weight " + Num(l.bce_weight()));
    parts.push_back("Dice weight " + Num(l.dice_weight()));
  }
  if (kind == "cross_entropy_dice") {
    parts.push_back("CE weight " + Num(l.ce_weight()));
    parts.push_back("Dice weight " + Num(l.dice_weight()));
  }
  if (l.has_pos_weight() && absl::StrContains(kind, "bce")) {
    parts.push_back("pos weight " + Num(l.pos_weight()));
  }
  if (!l.class_weights().empty()) {
    std::vector<std::string> weights;
    for (double w : l.class_weights()) weights.push_back(Num(w));
    parts.push_back("class weights " + absl::StrJoin(weights, "/"));
  }
  if (l.label_smoothing() > 0) parts.push_back("label smoothing " + Num(l.label_smoothing()));
  if (l.has_ignore_index() && l.ignore_index() != -100) {
    parts.push_back(absl::StrCat("ignore index ", l.ignore_index()));
  }
  if (l.has_dice_smooth() && absl::StrContains(kind, "dice")) {
    parts.push_back("Dice smooth " + Num(l.dice_smooth()));
  }
  return parts.empty() ? name : absl::StrCat(name, " (", absl::StrJoin(parts, ", "), ")");
}

std::string AugmentationSettings(const v1::AugmentationSpec& a) {
  std::vector<std::string> parts;
  if (a.hflip()) parts.push_back("horizontal flip");
  if (a.vflip()) parts.push_back("vertical flip");
  if (a.rotation_degrees() > 0) parts.push_back("rotation +-" + Num(a.rotation_degrees()) + " deg");
  if (a.has_crop_scale_min() || a.has_crop_scale_max()) {
    parts.push_back(absl::StrCat("resized crop of ", Num(a.crop_scale_min()), "-",
                                 Num(a.crop_scale_max()), " of the area"));
  }
  if (a.brightness() > 0) parts.push_back("brightness " + Num(a.brightness()));
  if (a.contrast() > 0) parts.push_back("contrast " + Num(a.contrast()));
  if (a.saturation() > 0) parts.push_back("saturation " + Num(a.saturation()));
  return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
}

std::string DataKindWord(v1::DataKind kind) {
  const std::string word = EnumWord(v1::DataKind_Name(kind), "DATA_KIND_");
  return word.empty() ? "unspecified" : word;
}

std::string CodeBlock(const std::string& text) {
  std::string body = text;
  while (!body.empty() && body.back() == '\n') body.pop_back();
  return "```text\n" + body + "\n```\n";
}

void AppendSummary(const ReportInputs& in, const std::string& monitor, std::string* out) {
  const v1::JobSpec& spec = in.spec->proto();
  const train::Task task = in.spec->task();
  absl::StrAppend(out, TaskTitle(task), " with a ", ModelDescription(spec.model()), " of ",
                  Grouped(in.parameters), " parameters on ", DataKindWord(spec.data().kind()),
                  " data");
  if (spec.data().image_size() > 0) {
    absl::StrAppend(out, " (", spec.data().image_size(), "x", spec.data().image_size(), ")");
  }
  absl::StrAppend(out, ". Trained ", Plural(static_cast<int64_t>(in.history.size()), "epoch"));
  if (spec.training().epochs() > 0 &&
      spec.training().epochs() != static_cast<int64_t>(in.history.size())) {
    absl::StrAppend(out, " of ", spec.training().epochs());
  }
  const train::EpochRecord* best = FindEpoch(in.history, in.best_epoch);
  if (best != nullptr) {
    absl::StrAppend(out, "; the best epoch was ", best->epoch + 1, " by ", MetricLabel(monitor),
                    " = ", FormatValue(Value(*best, monitor)));
    if (monitor != "val_loss")
      absl::StrAppend(out, " (val loss ", FormatValue(best->val_loss), ")");
    absl::StrAppend(out, ".");
  } else {
    absl::StrAppend(out, "; no best epoch was recorded.");
  }
  absl::StrAppend(out, "\n");
}

void AppendMetrics(const ReportInputs& in, const std::string& monitor, std::string* out) {
  absl::StrAppend(out, "\n## Metrics\n\n");
  const train::EpochRecord* best = FindEpoch(in.history, in.best_epoch);
  const train::EpochRecord* last = in.history.empty() ? nullptr : &in.history.back();
  if (last == nullptr) {
    absl::StrAppend(out, "_No epoch finished._\n");
    return;
  }
  const train::Task task = in.spec->task();
  std::vector<std::string> names = {"val_loss", "train_loss"};
  for (const std::string& m : MainMetrics(task)) names.push_back(m);
  if (std::find(names.begin(), names.end(), monitor) == names.end()) names.push_back(monitor);

  MarkdownTable table;
  table.AddColumn("metric");
  if (best != nullptr)
    table.AddColumn(absl::StrCat("best (epoch ", best->epoch + 1, ")"), Align::kRight);
  table.AddColumn(absl::StrCat("final (epoch ", last->epoch + 1, ")"), Align::kRight);
  for (const std::string& name : names) {
    std::vector<std::string> row = {MetricLabel(name)};
    if (best != nullptr) row.push_back(FormatValue(Value(*best, name)));
    row.push_back(FormatValue(Value(*last, name)));
    table.AddRow(std::move(row));
  }
  absl::StrAppend(out, "Validation metrics unless marked train; the monitor is ",
                  MetricLabel(monitor), " (", train::HigherIsBetter(monitor) ? "higher" : "lower",
                  " is better).\n\n", table.Render());

  // Per-class metrics of the best epoch (or the final one without a best).
  const train::EpochRecord& source = best != nullptr ? *best : *last;
  const std::vector<std::string> families =
      task == train::Task::kClassification ? std::vector<std::string>{"precision", "recall", "f1"}
                                           : std::vector<std::string>{"dice", "iou"};
  std::set<std::string> classes;
  for (const auto& [name, value] : source.val_metrics) {
    const size_t slash = name.find('/');
    if (slash == std::string::npos) continue;
    if (std::find(families.begin(), families.end(), name.substr(0, slash)) != families.end()) {
      classes.insert(name.substr(slash + 1));
    }
  }
  if (classes.empty()) return;
  if (classes.size() > kMaxPerClassRows) {
    absl::StrAppend(out, "\nPer-class metrics of ", classes.size(),
                    " classes are in metrics.json and history.csv.\n");
    return;
  }
  MarkdownTable per_class;
  per_class.AddColumn("class");
  for (const std::string& f : families) per_class.AddColumn(MetricLabel(f), Align::kRight);
  for (const std::string& c : classes) {
    std::vector<std::string> row = {c};
    for (const std::string& f : families) row.push_back(FormatValue(Value(source, f + "/" + c)));
    per_class.AddRow(std::move(row));
  }
  absl::StrAppend(out, "\nPer class, epoch ", source.epoch + 1,
                  " (\"-\": the class was absent from predictions and truths):\n\n",
                  per_class.Render());
}

void AppendHyperparameters(const ReportInputs& in, const std::string& monitor, std::string* out) {
  const v1::JobSpec& spec = in.spec->proto();
  const v1::TrainingSpec& t = spec.training();
  MarkdownTable table;
  table.AddColumn("setting").AddColumn("value");
  table.AddRow({"task", TaskTitle(in.spec->task())});
  table.AddRow({"model", ModelDescription(spec.model())});
  for (const auto& [setting, value] : ModelSettings(spec.model())) table.AddRow({setting, value});
  table.AddRow({"parameters", Grouped(in.parameters)});
  if (spec.model().parameter_budget() > 0) {
    table.AddRow({"parameter budget",
                  Grouped(spec.model().parameter_budget()) +
                      (spec.model().fit_width_to_budget() ? " (width fitted to it)" : "")});
  }
  table.AddRow({"optimizer", OptimizerSettings(t.optimizer())});
  table.AddRow({"schedule", ScheduleSettings(t.schedule())});
  table.AddRow({"epochs", absl::StrCat(t.epochs())});
  table.AddRow({"batch size", absl::StrCat(t.batch_size())});
  table.AddRow({"loss", LossSettings(t.loss())});
  table.AddRow({"augmentation", AugmentationSettings(spec.data().augmentation())});
  table.AddRow({"gradient clipping",
                t.grad_clip_norm() > 0 ? "global L2 norm " + Num(t.grad_clip_norm()) : "none"});
  table.AddRow({"early stopping",
                t.early_stopping().enabled()
                    ? absl::StrCat("patience ", Plural(t.early_stopping().patience(), "epoch"),
                                   ", min delta ", Num(t.early_stopping().min_delta()))
                    : "off"});
  table.AddRow({"monitor", monitor});
  table.AddRow({"seed", absl::StrCat(t.seed())});
  table.AddRow({"device", t.device().empty() ? "cpu" : t.device()});
  table.AddRow({"arithmetic", absl::StrCat(t.precision() == v1::PRECISION_BF16
                                               ? "bfloat16 autocast (weights float32)"
                                               : "float32",
                                           t.channels_last() ? ", channels-last" : "")});
  absl::StrAppend(out, "\n## Hyperparameters\n\n", table.Render());
}

void AppendData(const ReportInputs& in, std::string* out) {
  const v1::DataSpec& d = in.spec->proto().data();
  absl::StrAppend(out, "\n## Data\n\n");
  absl::StrAppend(out, "- kind: ", DataKindWord(d.kind()), "\n");
  if (!d.path().empty()) absl::StrAppend(out, "- path: `", d.path(), "`\n");
  if (d.image_size() > 0)
    absl::StrAppend(out, "- image size: ", d.image_size(), "x", d.image_size(), "\n");
  if (!d.class_ids().empty()) {
    absl::StrAppend(out, "- classes: ", absl::StrJoin(d.class_ids(), ", "), "\n");
  } else if (d.num_classes() > 0) {
    absl::StrAppend(out, "- classes: ", d.num_classes(), "\n");
  }
  if (d.num_samples() > 0)
    absl::StrAppend(out, "- samples generated: ", Grouped(d.num_samples()), "\n");
  if (d.has_validation_fraction()) {
    absl::StrAppend(out, "- validation fraction: ", Num(d.validation_fraction()), "\n");
  }
  if (d.has_split_seed()) absl::StrAppend(out, "- split seed: ", d.split_seed(), "\n");
  if (!in.data_summary.empty()) absl::StrAppend(out, "\n", CodeBlock(in.data_summary));
}

void AppendHistory(const ReportInputs& in, std::string* out) {
  absl::StrAppend(out, "\n## History\n\n");
  if (in.history.empty()) {
    absl::StrAppend(out, "_No epoch finished._\n");
    return;
  }
  if (in.history.size() > kMaxHistoryRows) {
    absl::StrAppend(out, Plural(static_cast<int64_t>(in.history.size()), "epoch"),
                    ": too many for a table; see history.csv.\n");
    return;
  }
  const std::string headline = MainMetrics(in.spec->task()).front();
  MarkdownTable table;
  table.AddColumn("epoch", Align::kRight)
      .AddColumn("train loss", Align::kRight)
      .AddColumn("val loss", Align::kRight)
      .AddColumn("val " + MetricLabel(headline), Align::kRight)
      .AddColumn("lr", Align::kRight)
      .AddColumn("seconds", Align::kRight);
  for (const train::EpochRecord& r : in.history) {
    const std::string epoch = absl::StrCat(r.epoch + 1);
    table.AddRow({r.epoch == in.best_epoch ? "**" + epoch + "**" : epoch, FormatValue(r.train_loss),
                  FormatValue(r.val_loss), FormatValue(Value(r, headline)),
                  absl::StrFormat("%.3g", r.learning_rate), FormatValue(r.seconds, 1)});
  }
  absl::StrAppend(out, "The best epoch is in bold.\n\n", table.Render());
}

}  // namespace

std::string FormatReportMarkdown(const ReportInputs& in) {
  std::string monitor = in.monitor;
  if (monitor.empty()) monitor = in.spec->proto().training().monitor();
  if (monitor.empty()) monitor = MainMetrics(in.spec->task()).front();
  std::string title = in.title;
  if (title.empty()) title = in.spec->proto().name();
  if (title.empty()) title = "Training run";

  std::string out = absl::StrCat("# ", title, "\n\n");
  if (!in.spec->proto().description().empty()) {
    absl::StrAppend(&out, in.spec->proto().description(), "\n\n");
  }
  AppendSummary(in, monitor, &out);
  AppendMetrics(in, monitor, &out);
  AppendHyperparameters(in, monitor, &out);

  absl::StrAppend(&out, "\n## Architecture\n\n");
  if (!in.architecture_table.empty()) absl::StrAppend(&out, CodeBlock(in.architecture_table), "\n");
  absl::StrAppend(&out, "Parameters: ", Grouped(in.parameters), ".\n");

  AppendData(in, &out);

  if (!in.images.empty()) {
    absl::StrAppend(&out, "\n## Plots\n");
    for (const std::string& image : in.images) {
      const std::string stem = std::filesystem::path(image).stem().string();
      absl::StrAppend(&out, "\n![", stem, "](", image, ")\n");
    }
  }
  AppendHistory(in, &out);
  return out;
}

Status WriteReportMarkdown(const std::string& path, const ReportInputs& inputs) {
  std::string text;
  try {
    text = FormatReportMarkdown(inputs);
  } catch (const std::exception& e) {
    return InternalError("report " + path + ": " + e.what());
  }
  return WriteFileDurably(path, text);
}

}  // namespace selene::report
