#!/usr/bin/env bash
# CMAKE_ARGS for building llama-cpp-python on this CPU.
# The default native build enables AMX kernels that segfault on the first generation on
# the shared Xeons we run on (see shared/MODELS.md), so we turn native detection off and
# switch on exactly the instruction sets /proc/cpuinfo reports.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
# Only the library: no tests, examples, tools, server or multimodal (mtmd) — faster builds.
args="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
args+=" -DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF"
has() { [[ " $flags " == *" $1 "* ]]; }
has avx && args+=" -DGGML_AVX=ON"
has avx2 && args+=" -DGGML_AVX2=ON"
has fma && args+=" -DGGML_FMA=ON"
has f16c && args+=" -DGGML_F16C=ON"
has bmi2 && args+=" -DGGML_BMI2=ON"
has avx512f && args+=" -DGGML_AVX512=ON"
has avx512vbmi && args+=" -DGGML_AVX512_VBMI=ON"
has avx512_vnni && args+=" -DGGML_AVX512_VNNI=ON"
has avx512_bf16 && args+=" -DGGML_AVX512_BF16=ON"
has avx_vnni && args+=" -DGGML_AVX_VNNI=ON"
echo "$args"
