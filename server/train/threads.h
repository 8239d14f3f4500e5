// Torch starts with one intra-op thread on this platform; Selene sets the count explicitly.
#pragma once

namespace selene::train {

// Sets torch's intra-op threads to `requested` when > 0, else to $SELENE_THREADS when set, else
// to every hardware thread. Returns the count in effect.
int ConfigureTorchThreads(int requested = 0);

}  // namespace selene::train
