# The Python client (client/python): its package is copied into ${build}/python together with
# the protobuf modules protoc generates from proto/ (adapter_pb2 with -I proto; health_pb2 with
# -I proto/grpc/health/v1, so nothing named `grpc` shadows the grpc package), and its pytest
# suite runs against the real moe-adapter-server. Included from tests/CMakeLists.txt.
set(_py_src ${PROJECT_SOURCE_DIR}/client/python)
set(_py_out ${CMAKE_BINARY_DIR}/python/moe_adapter_client)
set(_py_proto ${PROJECT_SOURCE_DIR}/proto)
find_program(MOE_GRPC_PYTHON_PLUGIN grpc_python_plugin)

file(GLOB _py_files RELATIVE ${_py_src}/moe_adapter_client CONFIGURE_DEPENDS ${_py_src}/moe_adapter_client/*.py)
set(_py_outputs)
foreach(_f ${_py_files})
  add_custom_command(OUTPUT ${_py_out}/${_f}
    COMMAND ${CMAKE_COMMAND} -E copy ${_py_src}/moe_adapter_client/${_f} ${_py_out}/${_f}
    DEPENDS ${_py_src}/moe_adapter_client/${_f} VERBATIM)
  list(APPEND _py_outputs ${_py_out}/${_f})
endforeach()
add_custom_command(
  OUTPUT ${_py_out}/_proto/moe_adapter/v1/adapter_pb2.py ${_py_out}/_proto/health_pb2.py
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_py_out}/_proto
  COMMAND protobuf::protoc -I ${_py_proto} --python_out=${_py_out}/_proto
          ${_py_proto}/moe_adapter/v1/adapter.proto
  COMMAND protobuf::protoc -I ${_py_proto}/grpc/health/v1 --python_out=${_py_out}/_proto
          ${_py_proto}/grpc/health/v1/health.proto
  DEPENDS ${_py_proto}/moe_adapter/v1/adapter.proto ${_py_proto}/grpc/health/v1/health.proto protobuf::protoc
  COMMENT "protoc --python_out (Python client)" VERBATIM)
add_custom_target(moe_adapter_python ALL DEPENDS ${_py_outputs}
  ${_py_out}/_proto/moe_adapter/v1/adapter_pb2.py ${_py_out}/_proto/health_pb2.py)

# The suite needs Debian's python3-grpcio, -protobuf, -numpy and -pytest (scripts/install-deps.sh).
set(MOE_PYTHON /usr/bin/python3 CACHE FILEPATH "Interpreter of the Python client suite (Debian packages)")
execute_process(COMMAND ${MOE_PYTHON} -c "import grpc, google.protobuf, numpy, pytest"
  RESULT_VARIABLE _py_missing OUTPUT_QUIET ERROR_QUIET)
if(_py_missing EQUAL 0)
  add_test(NAME python_client
    COMMAND ${MOE_PYTHON} -m pytest -p no:cacheprovider -q -rs ${_py_src}/tests)
  set_tests_properties(python_client PROPERTIES LABELS unit TIMEOUT 600
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;PYTHONPATH=${CMAKE_BINARY_DIR}/python;MOE_SERVER_PATH=$<TARGET_FILE:moe-adapter-server>;MOE_TEST_DATA_DIR=${PROJECT_SOURCE_DIR}/tests/data")
else()
  message(WARNING "python_client test skipped: ${MOE_PYTHON} lacks grpc/protobuf/numpy/pytest "
                  "(scripts/install-deps.sh installs python3-grpcio python3-protobuf python3-numpy python3-pytest)")
  add_test(NAME python_client COMMAND ${CMAKE_COMMAND} -E echo
    "SKIPPED: ${MOE_PYTHON} lacks python3-grpcio/-protobuf/-numpy/-pytest; run scripts/install-deps.sh")
  set_tests_properties(python_client PROPERTIES LABELS unit SKIP_REGULAR_EXPRESSION "SKIPPED:")
endif()
add_dependencies(moe_adapter_python moe-adapter-server)
