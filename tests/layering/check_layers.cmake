# The layering check: fails when a source file includes a header of a higher
# layer (the layer order is the one CMakeLists.txt links by). Linking catches
# calls into a higher layer, but not a header-only include (an inline
# function, a struct), which is what this catches. Run by ctest as
#   cmake -DROOT=<source dir> -DLAYERS=support,frontend,... \
#         -DDIRS=compiler/support,compiler/frontend,... -P check_layers.cmake
# LAYERS and DIRS are parallel lists, lowest layer first.
string(REPLACE "," ";" layers "${LAYERS}")
string(REPLACE "," ";" dirs "${DIRS}")
list(LENGTH layers n)
if(n EQUAL 0)
  message(FATAL_ERROR "check_layers: no LAYERS given")
endif()
math(EXPR last "${n} - 1")

set(violations "")
set(files_checked 0)
foreach(i RANGE ${last})
  list(GET layers ${i} layer)
  list(GET dirs ${i} dir)
  file(GLOB files ${ROOT}/${dir}/*.h ${ROOT}/${dir}/*.cpp ${ROOT}/${dir}/*.def)
  foreach(f ${files})
    math(EXPR files_checked "${files_checked} + 1")
    file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line ${lines})
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*$" "\\1" inc "${line}")
      foreach(j RANGE ${last})
        list(GET dirs ${j} other_dir)
        if(inc MATCHES "^${other_dir}/" AND j GREATER i)
          list(GET layers ${j} other)
          file(RELATIVE_PATH rel ${ROOT} ${f})
          string(APPEND violations
                 "\n  ${rel} (layer ${layer}) includes ${inc} (layer ${other}, above it)")
        endif()
      endforeach()
    endforeach()
  endforeach()
endforeach()

if(files_checked EQUAL 0)
  message(FATAL_ERROR "check_layers: no source files under ${ROOT}")
endif()
if(violations)
  message(FATAL_ERROR "layering violated (order: ${LAYERS}):${violations}")
endif()
message(STATUS "layering: ${files_checked} files include only their own or lower layers")
