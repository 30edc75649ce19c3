# CMake toolchain file for a bare-metal Cortex-M application with arm-none-eabi-gcc:
#     cmake -S app -B build -DCMAKE_TOOLCHAIN_FILE=path/to/this/toolchain-arm-none-eabi.cmake
# Generic: no operating system (no shared libraries, no test executables at configure
# time). The core's flags (-mcpu, -mfpu, -mfloat-abi) come with the library's
# `<prefix>-core` INTERFACE target, which linking `<prefix>` gives the application.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
