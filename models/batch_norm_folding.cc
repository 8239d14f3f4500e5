// BatchNorm folding: the arithmetic, and the Sequential rewrite.
#include "models/batch_norm_folding.h"

#include <memory>
#include <string>
#include <utility>

namespace selene::models {

namespace nn = torch::nn;

nn::Conv2d FoldBatchNorm(const nn::Conv2d& conv, const nn::BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  const int64_t channels = conv->options.out_channels();
  TORCH_CHECK(bn->options.track_running_stats() && bn->running_var.defined(),
              "FoldBatchNorm: the BatchNorm keeps no running statistics");
  TORCH_CHECK(bn->options.num_features() == channels, "FoldBatchNorm: BatchNorm of ",
              bn->options.num_features(), " channels after a conv with ", channels, " outputs");
  TORCH_CHECK(c10::holds_alternative<torch::enumtype::kZeros>(conv->options.padding_mode()),
              "FoldBatchNorm: only zero-padded convolutions");
  // Computed in double: the scale can be large where a channel's variance is tiny.
  const torch::Tensor var = bn->running_var.to(torch::kDouble);
  torch::Tensor scale = torch::rsqrt(var + bn->options.eps());
  torch::Tensor shift = -bn->running_mean.to(torch::kDouble) * scale;
  if (bn->options.affine()) {
    scale = scale * bn->weight.to(torch::kDouble);
    shift = shift * bn->weight.to(torch::kDouble) + bn->bias.to(torch::kDouble);
  }
  torch::Tensor bias = shift;
  if (conv->bias.defined()) bias = bias + conv->bias.to(torch::kDouble) * scale;

  const auto& o = conv->options;
  nn::Conv2d folded(nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                        .stride(o.stride())
                        .padding(o.padding())
                        .dilation(o.dilation())
                        .groups(o.groups())
                        .bias(true));
  folded->to(conv->weight.device(), conv->weight.scalar_type());
  const auto type = conv->weight.scalar_type();
  folded->weight.copy_(conv->weight.to(torch::kDouble) * scale.view({channels, 1, 1, 1}));
  folded->bias.copy_(bias.to(type));
  for (torch::Tensor& p : folded->parameters()) p.set_requires_grad(false);
  return folded;
}

nn::Sequential FoldBatchNorms(const nn::Sequential& sequential) {
  nn::Sequential out;
  const auto children = sequential->named_children();
  const auto modules = sequential->begin();  // the AnyModules, in the order of the names
  for (size_t i = 0; i < children.size(); ++i) {
    const std::string& name = children[i].key();
    const std::shared_ptr<nn::Module>& child = children[i].value();
    auto conv = std::dynamic_pointer_cast<nn::Conv2dImpl>(child);
    std::shared_ptr<nn::BatchNorm2dImpl> bn;
    if (conv != nullptr && i + 1 < children.size()) {
      bn = std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(children[i + 1].value());
    }
    if (bn != nullptr) {
      out->push_back(std::string(name),
                     nn::AnyModule(FoldBatchNorm(nn::Conv2d(conv), nn::BatchNorm2d(bn))));
      ++i;  // the BatchNorm is now part of the conv
    } else {
      out->push_back(std::string(name), nn::AnyModule(*(modules + static_cast<std::ptrdiff_t>(i))));
    }
  }
  return out;
}

}  // namespace selene::models
