# Warning, sanitizer and language settings shared by every hlip target (apply with hlip_target_options).

add_library(hlip_compile_options INTERFACE)
target_compile_options(hlip_compile_options INTERFACE -Wall -Wextra -Wno-unused-parameter)
if(HLIP_FATAL_WARNINGS)
  target_compile_options(hlip_compile_options INTERFACE -Werror)
endif()
if(HLIP_SANITIZE_ADDRESS)
  target_compile_options(hlip_compile_options INTERFACE -fsanitize=address -fno-omit-frame-pointer)
  target_link_options(hlip_compile_options INTERFACE -fsanitize=address)
endif()
if(HLIP_SANITIZE_UNDEFINED)
  target_compile_options(hlip_compile_options INTERFACE -fsanitize=undefined -fno-sanitize-recover=undefined)
  target_link_options(hlip_compile_options INTERFACE -fsanitize=undefined)
endif()
if(HLIP_BUILD_FUZZ)
  # libFuzzer steers by the coverage of the parsers themselves, so every hlip target is instrumented; ASan and
  # UBSan turn out-of-bounds accesses and undefined behaviour into crashes the fuzzer reports.
  target_compile_options(hlip_compile_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(hlip_compile_options INTERFACE -fsanitize=address,undefined)
endif()
