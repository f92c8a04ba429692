# CTest `hlip_install_example` (label "install"): installs the build tree to a fresh prefix, configures and
# builds examples/embed_study against that prefix alone (find_package(hlip)), then runs it on a model folder
# made of the checked-in tiny reference weights and two checked-in NIfTI scans.
#
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=... -DTorch_DIR=...
#         -P example_against_install.cmake

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "${command}: exit ${code}\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# The tensor names in a safetensors file's JSON header (the first 8 bytes: its length, little-endian).
function(safetensors_keys path out_var)
  file(READ ${path} length_hex LIMIT 8 HEX)
  set(reversed "")
  foreach(i RANGE 6 0 -2)
    string(SUBSTRING ${length_hex} ${i} 2 byte)
    string(APPEND reversed ${byte})
  endforeach()
  math(EXPR length "0x${reversed}")
  file(READ ${path} header OFFSET 8 LIMIT ${length})
  string(JSON count LENGTH "${header}")
  math(EXPR last "${count} - 1")
  set(keys "")
  foreach(i RANGE ${last})
    string(JSON key MEMBER "${header}" ${i})
    if(NOT key STREQUAL "__metadata__")
      list(APPEND keys ${key})
    endif()
  endforeach()
  set(${out_var} ${keys} PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/embed_study -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix} -DTorch_DIR=${Torch_DIR}
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)

# The model folder: the tiny reference weights as two shards, an index, and a word-level vocabulary.
set(model ${WORK_DIR}/model)
set(data ${SOURCE_DIR}/tests/data)
file(MAKE_DIRECTORY ${model}/tokenizer)
file(COPY_FILE ${data}/clip/tiny-cls-scanstudy/open_clip_config.json ${model}/open_clip_config.json)
set(map "{}")
foreach(pair "vision/tiny-cls-scanstudy/model.safetensors|model-00001-of-00002.safetensors"
             "clip/tiny-cls-scanstudy/text.safetensors|model-00002-of-00002.safetensors")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 source)
  list(GET pair 1 shard)
  file(CREATE_LINK ${data}/${source} ${model}/${shard} SYMBOLIC)
  safetensors_keys(${data}/${source} keys)
  foreach(key IN LISTS keys)
    string(JSON map SET "${map}" "${key}" "\"${shard}\"")
  endforeach()
endforeach()
file(WRITE ${model}/model.safetensors.index.json "{\"weight_map\": ${map}}")
string(REPLACE " " "\n" vocab "[PAD] [UNK] [CLS] [SEP] [MASK] this study shows : . no normal glioma stroke\n")
file(WRITE ${model}/tokenizer/vocab.txt "${vocab}")
file(WRITE ${WORK_DIR}/tiny.toml "base = \"mri-brain\"\nname = \"tiny\"\noutput_size = [8, 24, 40]\nresize_size = 40\n")

set(prompts "this study shows: normal." "this study shows: glioma." "this study shows: stroke.")
run(${WORK_DIR}/build/embed_study ${model} ${WORK_DIR}/tiny.toml ${data}/nifti/f32.nii.gz
    ${data}/nifti/f64.nii.gz -- ${prompts})
message(STATUS "embed_study:\n${run_output}")
if(NOT run_output MATCHES "study: 2 scan\\(s\\) of 8x24x40, embedding \\[1, 24\\]")
  message(FATAL_ERROR "embed_study: unexpected study line")
endif()
foreach(prompt IN LISTS prompts)
  string(REPLACE "." "\\." pattern "${prompt}")
  if(NOT run_output MATCHES "probability ([0-9.e-]+)  cosine [0-9.e-]+  ${pattern}")
    message(FATAL_ERROR "embed_study: no line for \"${prompt}\"")
  endif()
endforeach()

execute_process(COMMAND ${WORK_DIR}/build/embed_study ${model} tiny-nonexistent ${data}/nifti/f32.nii.gz -- a
                RESULT_VARIABLE code ERROR_VARIABLE err)
if(NOT code EQUAL 1 OR NOT err MATCHES "tiny-nonexistent")
  message(FATAL_ERROR "embed_study with an unknown preset: exit ${code}, \"${err}\"")
endif()
