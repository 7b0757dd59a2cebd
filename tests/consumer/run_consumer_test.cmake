# ctest driver (cmake -P): install cpuhp from BINARY_DIR into a scratch prefix,
# then build tests/consumer against it twice, through find_package(cpuhp) and
# through pkg-config, and run both.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${prefix}"
                COMMAND_ERROR_IS_FATAL ANY)

execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer"
                        -B "${WORK_DIR}/cmake-build" "-DCMAKE_PREFIX_PATH=${prefix}"
                COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/cmake-build"
                COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${WORK_DIR}/cmake-build/consumer" COMMAND_ERROR_IS_FATAL ANY)

file(GLOB_RECURSE pc_files "${prefix}/*/cpuhp.pc")
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir "${pc_file}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
execute_process(COMMAND pkg-config --cflags --libs cpuhp OUTPUT_VARIABLE flags
                OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND c++ "${SOURCE_DIR}/tests/consumer/main.cpp" ${flags}
                        -o "${WORK_DIR}/pkgconfig-consumer"
                COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${WORK_DIR}/pkgconfig-consumer" COMMAND_ERROR_IS_FATAL ANY)
