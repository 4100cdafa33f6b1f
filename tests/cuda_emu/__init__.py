"""A CPU emulation of the CUDA execution model that runs tts_fast's .cu files (see cuda_emu.h)."""
