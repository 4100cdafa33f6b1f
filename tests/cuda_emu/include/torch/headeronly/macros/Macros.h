// Stand-in for torch's header-only macros under the emulator: a failed CUDA_KERNEL_ASSERT is
// reported (emu::kernel_assert) instead of trapping the context, and the kernel goes on.
#pragma once

#define CUDA_KERNEL_ASSERT(cond) ::emu::kernel_assert(static_cast<bool>(cond), #cond, __FILE__, __LINE__)
