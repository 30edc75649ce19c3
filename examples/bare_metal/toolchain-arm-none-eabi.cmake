# CMake toolchain file for bare-metal Cortex-M with arm-none-eabi-gcc. The core's flags
# (-mcpu, -mfpu, -mfloat-abi) come from the exported libraries (QA_ARCH_FLAGS).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
