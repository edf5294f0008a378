# Run by ctest after the tests (CTestCustom.cmake, written by tests/CMakeLists.txt): prints why
# each skipped test skipped, from the files they wrote to $INFINITY_SKIP_REASON_FILE.
file(GLOB reasons "${DIR}/*.txt")
foreach(file IN LISTS reasons)
  get_filename_component(name "${file}" NAME_WE)
  file(READ "${file}" reason)
  string(STRIP "${reason}" reason)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "Skipped ${name}: ${reason}")
endforeach()
