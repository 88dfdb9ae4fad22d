// Runs a CLI11 command tree in process and returns what it printed on standard output, for tests of a
// command's parsing and output without the binary:
//
//   std::string out = CaptureCli(RegisterGcpCommands, {"gcp", "roles", "--bucket", "b"});
//
// Parse errors (CLI::ParseError, CLI::ValidationError) propagate to the caller; stdout is restored either way.
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::testing {

template <typename Register>
std::string CaptureCli(Register register_commands, const std::vector<std::string>& args) {
  CLI::App app("sluice");
  register_commands(app);
  std::vector<const char*> argv{"sluice"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream captured;
  struct Restore {
    std::streambuf* old;
    ~Restore() { std::cout.rdbuf(old); }
  } restore{std::cout.rdbuf(captured.rdbuf())};
  app.parse(static_cast<int>(argv.size()), argv.data());
  return captured.str();
}

}  // namespace sluice::testing
